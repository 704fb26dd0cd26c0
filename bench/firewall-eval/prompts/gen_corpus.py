"""Generator for bench/firewall-eval/corpus/{injection,benign}.jsonl (written by hand; encoded variants computed here)."""
import json, os, sys
HERE = os.path.dirname(os.path.abspath(__file__))
exec(open(os.path.join(HERE, "gen_corpus_part1.py")).read())
exec(open(os.path.join(HERE, "gen_corpus_part2.py")).read())
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "corpus")
inj = [("override", OVERRIDE), ("extraction", EXTRACTION), ("roleplay", ROLEPLAY),
       ("forged_role", FORGED_ROLE), ("indirect", INDIRECT), ("encoded", ENCODED)]
ben = [("everyday", EVERYDAY), ("hard_negative", HARD_NEGATIVE), ("security", SECURITY),
       ("tool_output", TOOL_OUTPUT), ("multilingual", MULTILINGUAL)]
def write(path, groups, labels):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps({"scope": ["injection"]}) + "\n")
        for cat, items in groups:
            for t in items:
                f.write(json.dumps({"text": t, "labels": labels, "category": cat}, ensure_ascii=False) + "\n")
write(os.path.join(OUT, "injection.jsonl"), inj, ["injection"])
write(os.path.join(OUT, "benign.jsonl"), ben, [])
