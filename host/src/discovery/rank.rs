//! Keeping the best few of a ranking.

/// Keeps the `n` best of `items` by `score`, best first (ties by id): a
/// selection, then a sort of those `n` only.
pub(super) fn best_first<T: Copy + HasId>(items: &mut Vec<T>, n: usize, score: impl Fn(&T) -> f32) {
    let order = |a: &T, b: &T| score(b).total_cmp(&score(a)).then(a.id().cmp(&b.id()));
    if items.len() > n {
        items.select_nth_unstable_by(n, order);
        items.truncate(n);
    }
    items.sort_unstable_by(order);
}

/// Ranked tuples lead with their slot id.
pub(super) trait HasId {
    fn id(&self) -> usize;
}

impl HasId for (usize, f32) {
    fn id(&self) -> usize {
        self.0
    }
}

impl HasId for (usize, f32, f32) {
    fn id(&self) -> usize {
        self.0
    }
}
