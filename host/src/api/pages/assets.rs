//! The pages' static files, compiled into the binary: the stylesheet and the
//! vendored htmx (2.0.11 from npm, `host/assets/vendor/`, 0BSD licence
//! beside it). Named by version, so they are cached for a year.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("../../../assets/mercato.css");
const HTMX: &str = include_str!("../../../assets/vendor/htmx-2.0.11.min.js");

pub async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "mercato.css" => ("text/css; charset=utf-8", CSS),
        "htmx-2.0.11.min.js" => ("text/javascript; charset=utf-8", HTMX),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}
