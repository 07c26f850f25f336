//! The request-layer ceiling: the node's HTTP stack (axum 0.8 on hyper, a default multi-thread
//! tokio runtime, `axum::serve`) answering the cell routes with handlers that do nothing.
//!
//! Whatever a real request costs beyond this server is Tessera's own work: path and header
//! parsing, schema lookup, the blocking-pool hops, RocksDB, metrics. The routes match the node's
//! so that routing and the response shapes cost the same: a `PUT` reads its whole body and answers
//! `204`; a `GET` answers `200` with a 100-byte value.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::error::BenchError;

/// The value every `GET` answers with: 100 bytes, like the benchmark's values.
static VALUE: [u8; 100] = [b'x'; 100];

/// The empty-handler router, on the node's cell route.
pub fn router() -> Router {
    Router::new().route(
        "/v1/tables/{table}/rows/{key}/{column}",
        get(get_cell).put(put_cell),
    )
}

async fn get_cell() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Bytes::from_static(&VALUE),
    )
}

/// Takes the body as `Bytes`, so the whole value is read as the node reads it.
async fn put_cell(body: Bytes) -> StatusCode {
    std::hint::black_box(body);
    StatusCode::NO_CONTENT
}

/// Serves the ceiling on `listen` until `shutdown` completes.
///
/// Prints `listening on http://ADDR` once bound (with port 0, ADDR tells which port was picked).
pub async fn serve(
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BenchError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| BenchError::Bind {
            addr: listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| BenchError::Io {
        what: "reading the bound address",
        source,
    })?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{local}")
            .and_then(|()| stdout.flush())
            .map_err(|source| BenchError::Io {
                what: "printing the listening address",
                source,
            })?;
    }
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| BenchError::Io {
            what: "serving HTTP",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn get_answers_a_100_byte_value() {
        let request = Request::get("/v1/tables/t/rows/k1/v")
            .body(Body::empty())
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 100);
    }

    #[tokio::test]
    async fn put_reads_the_body_and_answers_204() {
        let request = Request::put("/v1/tables/t/rows/k1/v")
            .body(Body::from(vec![b'v'; 100]))
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn other_paths_are_not_found() {
        let request = Request::get("/v1/tables/t").body(Body::empty()).unwrap();
        let response = router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
