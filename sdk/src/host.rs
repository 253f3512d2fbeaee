//! What the host offers a running capability: logging and streamed output.

use crate::bindings::mercato::agent::host as wit;

/// Writes a debug line to the host's log.
pub fn debug(message: &str) {
    wit::log(wit::LogLevel::Debug, message);
}

/// Writes an informational line to the host's log.
pub fn info(message: &str) {
    wit::log(wit::LogLevel::Info, message);
}

/// Writes a warning to the host's log.
pub fn warn(message: &str) {
    wit::log(wit::LogLevel::Warn, message);
}

/// Writes an error line to the host's log.
pub fn error(message: &str) {
    wit::log(wit::LogLevel::Error, message);
}

/// Streams a chunk of output to the caller before the call returns.
///
/// Chunks count against the call's output byte budget; past it the host ends
/// the call with `output_too_large`.
pub fn emit(chunk: &str) {
    wit::emit(chunk);
}
