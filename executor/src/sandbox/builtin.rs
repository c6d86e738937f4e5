//! built-in backend (being written).
