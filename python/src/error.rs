//! `shepseg.ShepsegError`, and every library error as one line of it.

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::PyErr;

create_exception!(
    shepseg,
    ShepsegError,
    PyRuntimeError,
    "Every error shepseg raises: bad arguments, unreadable inputs, failed jobs. One line."
);

/// `e` and its causes, joined as `a: b: c` on one line, as the command line prints them.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A library error as `ShepsegError`, with `context` (the argument or file it concerns) first
/// when given.
pub fn raise(context: &str, e: &(dyn std::error::Error + 'static)) -> PyErr {
    let msg = one_line(e);
    if context.is_empty() {
        ShepsegError::new_err(msg)
    } else {
        ShepsegError::new_err(format!("{context}: {msg}"))
    }
}

/// A `ShepsegError` with this message.
pub fn bad(msg: impl Into<String>) -> PyErr {
    ShepsegError::new_err(msg.into())
}
