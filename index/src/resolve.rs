//! Version resolution over any index reader (being written).

use crate::entry::IndexEntry;

/// Anything that can list the published versions of a name: the git index ([`crate::repo`]),
/// a sparse HTTP client, a cache, or a test fixture.
pub trait IndexReader {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every version of `name` the index holds (yanked included), or `None` when the index
    /// has no such name. Names are looked up case-insensitively, as the layout is lowercase.
    fn entries(&self, name: &str) -> Result<Option<Vec<IndexEntry>>, Self::Error>;
}
