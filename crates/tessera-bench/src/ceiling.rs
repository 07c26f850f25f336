//! The request-layer ceiling: the node's HTTP stack (axum 0.8 on hyper, a default multi-thread
//! tokio runtime, `axum::serve`) answering the cell routes with handlers that do nothing.
//!
//! Whatever a real request costs beyond this server is Tessera's own work: path and header
//! parsing, schema lookup, the blocking-pool hops, RocksDB, metrics. The routes match the node's
//! so that routing and the response shapes cost the same: a `PUT` reads its whole body and answers
//! `204`; a `GET` answers `200` with a 100-byte value.
//!
//! With `--storage DIR` the same server also does the node's storage calls, and nothing else of
//! the node's work: a `GET` is one `CellStore::read_cell`, a `PUT` is a snapshot `read_cell`, the
//! body, then `CellStore::write_row`, as `tessera-server`'s cell handlers do them. `--dispatch`
//! picks how those calls run: on the blocking pool (`spawn_blocking`, as the node does) or inline
//! on the runtime's worker. Between the empty ceiling, these two and the node, a run shows which
//! layer costs what.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::{Args, ValueEnum};
use http_body_util::BodyExt;
use tessera_ring::{token_of, PartitionScheme};
use tessera_storage::{
    CellStore, CellWrite, RocksEngine, RocksOptions, RowKey, StorageError, StoreOptions,
};

use crate::error::BenchError;

/// `tessera-bench http-ceiling`.
#[derive(Clone, Debug, Args)]
pub struct CeilingArgs {
    /// Address to listen on; port 0 picks a free port (printed as `listening on http://ADDR`).
    #[arg(long, default_value = "127.0.0.12:7000")]
    pub listen: SocketAddr,
    /// Also do the node's storage calls, in a fresh database under this directory.
    #[arg(long)]
    pub storage: Option<PathBuf>,
    /// How storage calls run (with `--storage`).
    #[arg(long, value_enum, default_value_t = Dispatch::SpawnBlocking)]
    pub dispatch: Dispatch,
    /// Cap on tokio's blocking pool (tokio's default, and the node's, is 512 threads).
    #[arg(long)]
    pub max_blocking_threads: Option<usize>,
}

/// How the storage variant calls RocksDB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dispatch {
    /// `tokio::task::spawn_blocking` per call, as the node does.
    SpawnBlocking,
    /// Directly on the runtime worker that polls the request.
    Inline,
}

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

/// The storage variant's state: a cell store over RocksDB, opened as the node opens it.
pub struct Backend {
    store: CellStore<RocksEngine>,
    scheme: PartitionScheme,
    dispatch: Dispatch,
}

/// The table id rows are stored under (one table, as in the benchmarks).
const TABLE_ID: u32 = 1;

impl Backend {
    /// Opens a fresh database at `dir/rocksdb` with the node's default options.
    pub fn open(dir: &std::path::Path, dispatch: Dispatch) -> Result<Self, BenchError> {
        let path = dir.join("rocksdb");
        if path.exists() {
            return Err(BenchError::DirNotEmpty { path });
        }
        let options = RocksOptions {
            // The node's default (config/tessera.toml): storage.sync_writes = false.
            sync_writes: false,
            ..RocksOptions::default()
        };
        let engine = RocksEngine::open(&path, &options).map_err(|source| BenchError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            store: CellStore::new(engine, StoreOptions::new(0x7e55_e7a1)),
            scheme: PartitionScheme::default(),
            dispatch,
        })
    }

    fn row(&self, key: String) -> RowKey {
        let token = token_of(key.as_bytes());
        RowKey::new(TABLE_ID, self.scheme.partition_of(token), token, key)
    }

    /// Runs one storage call the configured way.
    async fn call<T, F>(self: &Arc<Self>, work: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&CellStore<RocksEngine>) -> Result<T, StorageError> + Send + 'static,
    {
        match self.dispatch {
            Dispatch::Inline => work(&self.store).map_err(|e| e.to_string()),
            Dispatch::SpawnBlocking => {
                let backend = self.clone();
                tokio::task::spawn_blocking(move || work(&backend.store))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// The storage variant's router: the cell routes doing the node's storage calls.
pub fn storage_router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route(
            "/v1/tables/{table}/rows/{key}/{column}",
            get(storage_get).put(storage_put),
        )
        .with_state(backend)
}

fn internal(message: String) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
}

async fn storage_get(
    State(backend): State<Arc<Backend>>,
    Path((_table, key, column)): Path<(String, String, String)>,
) -> Response {
    let row = backend.row(key);
    let cell = backend
        .call(move |store| store.read_cell(&row, column.as_bytes()))
        .await;
    match cell {
        Ok(Some(cell)) => match cell.values().as_slice() {
            [only] => match &only.data {
                Some(data) => (
                    [(header::CONTENT_TYPE, "application/octet-stream")],
                    data.clone(),
                )
                    .into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            },
            _ => StatusCode::MULTIPLE_CHOICES.into_response(),
        },
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(message) => internal(message),
    }
}

async fn storage_put(
    State(backend): State<Arc<Backend>>,
    Path((_table, key, column)): Path<(String, String, String)>,
    body: Body,
) -> Response {
    let row = backend.row(key);
    let column = column.into_bytes();
    // As the node: the context is taken before the body is read, then the write is its own call.
    let snapshot = {
        let (row, column) = (row.clone(), column.clone());
        backend
            .call(move |store| store.read_cell(&row, &column))
            .await
    };
    let context = match snapshot {
        Ok(cell) => cell.map(|cell| cell.join()).unwrap_or_default(),
        Err(message) => return internal(message),
    };
    let value = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let write = CellWrite::Set {
        column,
        value: value.to_vec(),
        context,
    };
    let written = backend
        .call(move |store| store.write_row(&row, std::slice::from_ref(&write), now_ms()))
        .await;
    match written {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(message) => internal(message),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// Serves the ceiling on `args.listen` until `shutdown` completes: the empty handlers, or with
/// `--storage` the storage variant.
///
/// Prints `listening on http://ADDR` once bound (with port 0, ADDR tells which port was picked).
pub async fn serve(
    args: &CeilingArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BenchError> {
    let router = match &args.storage {
        None => router(),
        Some(dir) => {
            let backend = tokio::task::block_in_place(|| Backend::open(dir, args.dispatch))?;
            storage_router(Arc::new(backend))
        }
    };
    let listen = args.listen;
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
    axum::serve(listener, router)
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_storage_variant_stores_and_reads_cells_either_way() {
        for dispatch in [Dispatch::SpawnBlocking, Dispatch::Inline] {
            let dir = tempfile::tempdir().unwrap();
            let backend = Arc::new(Backend::open(dir.path(), dispatch).unwrap());
            let app = storage_router(backend);
            let get = || {
                Request::get("/v1/tables/t/rows/k1/v")
                    .body(Body::empty())
                    .unwrap()
            };
            let response = app.clone().oneshot(get()).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
            for value in ["first", "second"] {
                let put = Request::put("/v1/tables/t/rows/k1/v")
                    .body(Body::from(value))
                    .unwrap();
                let response = app.clone().oneshot(put).await.unwrap();
                assert_eq!(response.status(), StatusCode::NO_CONTENT);
            }
            // The second write superseded the first (the snapshot's context), so one value is left.
            let response = app.clone().oneshot(get()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"second");
        }
    }

    #[tokio::test]
    async fn other_paths_are_not_found() {
        let request = Request::get("/v1/tables/t").body(Body::empty()).unwrap();
        let response = router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
