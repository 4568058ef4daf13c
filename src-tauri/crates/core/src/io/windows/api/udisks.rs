//! There is no UDisks2 on Windows.

pub fn available() -> bool {
    false
}
