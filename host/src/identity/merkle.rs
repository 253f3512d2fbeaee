//! Many documents under one signature: a Merkle tree over their canonical
//! bytes, whose root the marketplace key signs once, with an inclusion proof
//! for each document (the tree of RFC 9162 §2.1: leaves hashed as
//! `SHA-256(0x00 ‖ bytes)`, nodes as `SHA-256(0x01 ‖ left ‖ right)`, the
//! split at the largest power of two below the size).
//!
//! What is signed is [`batch_statement`], a line of text that no JSON
//! document can be, so a batch signature never passes for a document's own
//! and the other way round.
//!
//! Pure functions, no keys: `signing.rs` signs and verifies.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Most documents one proof may place (its path is at most 32 hashes).
pub const LEAVES_MAX: u64 = 1 << 32;

/// The hash of a leaf: a document's canonical bytes.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut hash = Sha256::new();
    hash.update([0u8]);
    hash.update(bytes);
    hash.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hash = Sha256::new();
    hash.update([1u8]);
    hash.update(left);
    hash.update(right);
    hash.finalize().into()
}

/// What the key signs for a tree of `leaves` documents with this root.
pub fn batch_statement(root: &Hash, leaves: u64) -> Vec<u8> {
    format!(
        "mercato-signed-batch-v1\nroot-sha256:{}\nleaves:{leaves}\n",
        hex::encode(root)
    )
    .into_bytes()
}

/// The largest power of two below `n` (`n` ≥ 2).
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root of `leaves` (at least one), and each leaf's inclusion proof,
/// nearest sibling first.
pub fn tree(leaves: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    let mut paths = vec![Vec::new(); leaves.len()];
    let root = subtree(leaves, &mut paths);
    (root, paths)
}

fn subtree(leaves: &[Hash], paths: &mut [Vec<Hash>]) -> Hash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let k = split(leaves.len());
    let (left_paths, right_paths) = paths.split_at_mut(k);
    let left = subtree(&leaves[..k], left_paths);
    let right = subtree(&leaves[k..], right_paths);
    // Each side's leaves prove themselves with the other side's root next.
    left_paths.iter_mut().for_each(|p| p.push(right));
    right_paths.iter_mut().for_each(|p| p.push(left));
    node_hash(&left, &right)
}

/// The root a proof leads to from `leaf`, the `index`th of `leaves`; `None`
/// when the proof cannot belong to such a tree (an index past the end, a
/// path of the wrong length). RFC 9162 §2.1.3.2.
pub fn root_from_proof(leaf: Hash, index: u64, leaves: u64, path: &[Hash]) -> Option<Hash> {
    if index >= leaves || leaves > LEAVES_MAX {
        return None;
    }
    let (mut f_n, mut s_n) = (index, leaves - 1);
    let mut root = leaf;
    for sibling in path {
        if s_n == 0 {
            return None;
        }
        if f_n & 1 == 1 || f_n == s_n {
            root = node_hash(sibling, &root);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            root = node_hash(&root, sibling);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    (s_n == 0).then_some(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("doc {i}").as_bytes()))
            .collect()
    }

    /// The tree as RFC 9162 defines it, written the plain way.
    fn reference_root(leaves: &[Hash]) -> Hash {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = split(leaves.len());
        node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
    }

    #[test]
    fn every_leaf_of_every_size_proves_its_place_and_no_other() {
        for n in 1..=33usize {
            let leaves = leaves(n);
            let (root, paths) = tree(&leaves);
            assert_eq!(root, reference_root(&leaves), "size {n}");
            for (i, (leaf, path)) in leaves.iter().zip(&paths).enumerate() {
                let (i, size) = (i as u64, n as u64);
                assert_eq!(
                    root_from_proof(*leaf, i, size, path),
                    Some(root),
                    "{i} of {n}"
                );
                // Another place, another leaf, a path cut or lengthened:
                // never this root. (A size is bound by the signed statement:
                // a proof in the left part of a tree may also fit a larger
                // one.)
                for wrong_index in (0..size).filter(|j| *j != i) {
                    assert_ne!(root_from_proof(*leaf, wrong_index, size, path), Some(root));
                }
                assert_eq!(root_from_proof(*leaf, size, size, path), None);
                assert_ne!(
                    root_from_proof(leaf_hash(b"forged"), i, size, path),
                    Some(root)
                );
                if let Some((_, shorter)) = path.split_last() {
                    assert_ne!(root_from_proof(*leaf, i, size, shorter), Some(root));
                }
                let mut longer = path.clone();
                longer.push(root);
                assert_ne!(root_from_proof(*leaf, i, size, &longer), Some(root));
            }
        }
    }

    #[test]
    fn a_leaf_and_a_node_never_hash_alike() {
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut joined = a.to_vec();
        joined.extend_from_slice(&b);
        assert_ne!(leaf_hash(&joined), node_hash(&a, &b));
        assert!(batch_statement(&a, 2).starts_with(b"mercato-signed-batch-v1\n"));
    }
}
