//! Property tests of the ledger.

use super::*;
use proptest::prelude::*;

const ORGS: [&str; 3] = ["org:a", "org:b", "org:c"];

fn account() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(ORGS[0].to_string()),
        Just(ORGS[1].to_string()),
        Just(ORGS[2].to_string()),
        Just(ESCROW.to_string()),
        Just(FEES.to_string()),
    ]
}

/// An operation on a small id space, so posts and voids hit real holds and
/// repeated ids collide.
fn op() -> impl Strategy<Value = Op> {
    let id = (0u8..24).prop_map(|n| format!("t{n}"));
    let amount = 0u64..5_000;
    prop_oneof![
        // A deposit.
        (id.clone(), account(), amount.clone()).prop_map(|(id, credit, amount)| Op::Transfer {
            id: format!("d{id}"),
            debit: WORLD.into(),
            credit,
            amount
        }),
        // A transfer between accounts (a release from escrow, a refund).
        (id.clone(), account(), account(), amount.clone()).prop_map(
            |(id, debit, credit, amount)| Op::Transfer {
                id,
                debit,
                credit,
                amount
            }
        ),
        (id.clone(), account(), account(), amount.clone(), 0u64..100).prop_map(
            |(id, debit, credit, amount, timeout_at_ms)| Op::Hold {
                id,
                debit,
                credit,
                amount,
                timeout_at_ms
            }
        ),
        (id.clone(), amount).prop_map(|(id, amount)| Op::Post { id, amount }),
        id.clone().prop_map(|id| Op::Void { id }),
        (id, 0u64..100).prop_map(|(id, now_ms)| Op::Expire { id, now_ms }),
    ]
}

/// Every account and transfer, in a comparable order.
type Snapshot = (Vec<(AccountId, Account)>, Vec<(String, Transfer)>);

fn snapshot(l: &Ledger) -> Snapshot {
    let mut transfers: Vec<_> = l
        .transfers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    transfers.sort_by(|a, b| a.0.cmp(&b.0));
    (
        l.accounts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        transfers,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any sequence of deposits, transfers, holds, posts, voids and expiries
    /// (valid or not) conserves the total, never overdraws an organisation,
    /// escrow or fees, leaves the ledger untouched when it refuses an
    /// operation, and settles each hold at most once.
    #[test]
    fn money_is_conserved_and_never_overdrawn(ops in proptest::collection::vec(op(), 1..120)) {
        let mut ledger = Ledger::default();
        let mut settled = std::collections::HashSet::new();
        for op in &ops {
            let before = snapshot(&ledger);
            match ledger.apply(op) {
                Ok(()) => {
                    if let Op::Post { id, .. } | Op::Void { id } | Op::Expire { id, .. } = op {
                        prop_assert!(settled.insert(id.clone()), "{id} settled twice");
                    }
                }
                Err(_) => prop_assert_eq!(before, snapshot(&ledger), "a refused op changed the ledger"),
            }
            prop_assert_eq!(ledger.check_invariants(), Ok(()));
        }
        // Everything outside the world is what the world put in.
        let inside: i128 = ledger
            .accounts()
            .filter(|(id, _)| id.as_str() != WORLD)
            .map(|(_, a)| i128::from(a.credits_posted) - i128::from(a.debits_posted))
            .sum();
        let world = ledger.account(WORLD);
        prop_assert_eq!(inside, i128::from(world.debits_posted) - i128::from(world.credits_posted));
    }

    /// A batch applies entirely or not at all.
    #[test]
    fn batches_are_all_or_nothing(setup in proptest::collection::vec(op(), 0..40),
                                  batch in proptest::collection::vec(op(), 2..6)) {
        let mut ledger = Ledger::default();
        for op in &setup {
            let _ = ledger.apply(op);
        }
        let before = snapshot(&ledger);
        let mut sequential = ledger.clone();
        let sequential_ok = batch.iter().all(|op| sequential.apply(op).is_ok());
        match ledger.apply_all(&batch) {
            Ok(()) => {
                prop_assert!(sequential_ok);
                prop_assert_eq!(snapshot(&sequential), snapshot(&ledger));
            }
            Err(_) => {
                prop_assert!(!sequential_ok);
                prop_assert_eq!(before, snapshot(&ledger));
            }
        }
        prop_assert_eq!(ledger.check_invariants(), Ok(()));
    }
}

#[test]
fn a_hold_posts_less_and_releases_the_rest() {
    let mut l = Ledger::default();
    let ok = |l: &mut Ledger, op: Op| l.apply(&op).unwrap_or_else(|e| panic!("{e}"));
    ok(
        &mut l,
        Op::Transfer {
            id: "d".into(),
            debit: WORLD.into(),
            credit: "org:a".into(),
            amount: 1_000,
        },
    );
    ok(
        &mut l,
        Op::Hold {
            id: "h".into(),
            debit: "org:a".into(),
            credit: ESCROW.into(),
            amount: 800,
            timeout_at_ms: 10,
        },
    );
    assert_eq!(l.account("org:a").available(), 200);
    assert_eq!(
        l.apply(&Op::Hold {
            id: "h2".into(),
            debit: "org:a".into(),
            credit: ESCROW.into(),
            amount: 201,
            timeout_at_ms: 10
        }),
        Err(Error::InsufficientFunds {
            account: "org:a".into(),
            available: 200,
            amount: 201
        })
    );
    assert_eq!(
        l.apply(&Op::Post {
            id: "h".into(),
            amount: 801
        }),
        Err(Error::PostExceedsHold {
            amount: 801,
            held: 800
        })
    );
    ok(
        &mut l,
        Op::Post {
            id: "h".into(),
            amount: 300,
        },
    );
    assert_eq!(l.account("org:a").available(), 700);
    assert_eq!(l.account(ESCROW).credits_posted, 300);
    assert!(matches!(
        l.apply(&Op::Void { id: "h".into() }),
        Err(Error::AlreadySettled { .. })
    ));
    ok(
        &mut l,
        Op::Hold {
            id: "h3".into(),
            debit: "org:a".into(),
            credit: ESCROW.into(),
            amount: 100,
            timeout_at_ms: 10,
        },
    );
    assert_eq!(
        l.apply(&Op::Expire {
            id: "h3".into(),
            now_ms: 9
        }),
        Err(Error::NotExpired("h3".into()))
    );
    assert_eq!(l.expired(10), ["h3".to_string()]);
    ok(
        &mut l,
        Op::Expire {
            id: "h3".into(),
            now_ms: 10,
        },
    );
    assert_eq!(l.account("org:a").available(), 700);
    assert_eq!(l.check_invariants(), Ok(()));
}

#[test]
fn a_settled_transfer_is_forgotten_and_its_effect_stays() {
    let mut l = Ledger::default();
    let ok = |l: &mut Ledger, op: Op| l.apply(&op).unwrap_or_else(|e| panic!("{e}"));
    ok(
        &mut l,
        Op::Transfer {
            id: "d".into(),
            debit: WORLD.into(),
            credit: "org:a".into(),
            amount: 1_000,
        },
    );
    ok(
        &mut l,
        Op::Hold {
            id: "h".into(),
            debit: "org:a".into(),
            credit: ESCROW.into(),
            amount: 800,
            timeout_at_ms: 10,
        },
    );
    // A pending hold cannot be forgotten (it would leak its reservation).
    assert_eq!(l.forget_settled("h"), Err(Error::StillPending("h".into())));
    ok(
        &mut l,
        Op::Post {
            id: "h".into(),
            amount: 300,
        },
    );
    let before = (l.account("org:a"), l.account(ESCROW), l.transfers_kept());
    assert_eq!(l.forget_settled("h"), Ok(()));
    assert_eq!(
        l.forget_settled("h"),
        Err(Error::UnknownTransfer("h".into()))
    );
    assert_eq!(l.transfer("h"), None);
    assert_eq!(
        (l.account("org:a"), l.account(ESCROW)),
        (before.0, before.1)
    );
    assert_eq!(l.transfers_kept(), before.2 - 1);
    assert_eq!(l.account("org:a").available(), 700);
    assert_eq!(l.check_invariants(), Ok(()));
}
