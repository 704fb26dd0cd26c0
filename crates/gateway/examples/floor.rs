//! The floor under the gateway: a bare proxy of `POST /v1/chat/completions` on the same HTTP
//! stack (axum's server, and reqwest or hyper-util's pooled client), with none of the
//! gateway's stages. `docs/benchmarks.md` compares it with the gateway and nginx in one run.
//!
//!     cargo build --release -p switchyard-gateway --example floor
//!     floor reqwest|hyper http://127.0.0.1:MOCK/v1/chat/completions 127.0.0.1:PORT

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type Answer = Result<([(&'static str, &'static str); 1], Bytes), StatusCode>;

const JSON: [(&str, &str); 1] = [("content-type", "application/json")];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: floor reqwest|hyper UPSTREAM_URL LISTEN_ADDR";
    let (Some(client), Some(upstream), Some(listen)) = (args.next(), args.next(), args.next())
    else {
        return Err(usage.into());
    };
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let app = match client.as_str() {
        "reqwest" => {
            let client = reqwest::Client::new();
            let url: reqwest::Url = upstream.parse()?;
            axum::Router::new().route(
                "/v1/chat/completions",
                post(move |body: Bytes| {
                    let (client, url) = (client.clone(), url.clone());
                    async move {
                        let bad = |_| StatusCode::BAD_GATEWAY;
                        let r = client.post(url).header(JSON[0].0, JSON[0].1).body(body);
                        let b = r.send().await.map_err(bad)?.bytes().await.map_err(bad)?;
                        Answer::Ok((JSON, b))
                    }
                }),
            )
        }
        "hyper" => {
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
            let uri: http::Uri = upstream.parse()?;
            axum::Router::new().route(
                "/v1/chat/completions",
                post(move |body: Bytes| {
                    let (client, uri) = (client.clone(), uri.clone());
                    async move {
                        let req = http::Request::post(uri)
                            .header(JSON[0].0, JSON[0].1)
                            .body(Full::new(body))
                            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
                        let r = client
                            .request(req)
                            .await
                            .map_err(|_| StatusCode::BAD_GATEWAY)?;
                        let b = r.into_body().collect().await;
                        let b = b.map_err(|_| StatusCode::BAD_GATEWAY)?.to_bytes();
                        Answer::Ok((JSON, b))
                    }
                }),
            )
        }
        _ => return Err(usage.into()),
    };
    axum::serve(listener, app).await?;
    Ok(())
}
