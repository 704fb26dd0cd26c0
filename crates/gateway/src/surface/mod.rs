//! API surfaces: decoding callers' requests into canonical ones and encoding answers back in the
//! caller's protocol. Only OpenAI's for now; Anthropic's Messages surface comes next.

pub mod openai;
