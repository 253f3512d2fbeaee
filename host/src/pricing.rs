//! Money and metering arithmetic: pure functions, integer micros, no floats.
//!
//! Cost of a call = `price_micros + ceil(fuel_used * micros_per_mfuel / 1_000_000)`.
//! A caller's `max_price_micros` buys exactly the fuel it can pay for:
//! `floor((max_price_micros - price_micros) * 1_000_000 / micros_per_mfuel)`,
//! capped by the host's `fuel_per_call_max`, so a call can never cost more
//! than its cap.

/// One million fuel: the unit `micros_per_mfuel` is priced in.
pub const FUEL_PER_MFUEL: u64 = 1_000_000;

/// Why a price cap cannot pay for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a cap of {max_price_micros} micros does not cover the base price of {price_micros} micros"
)]
pub struct CapBelowPrice {
    /// The caller's cap.
    pub max_price_micros: u64,
    /// The capability's base price.
    pub price_micros: u64,
}

/// The cost of a call that used `fuel_used` fuel.
pub fn cost_micros(price_micros: u64, micros_per_mfuel: u64, fuel_used: u64) -> u64 {
    let metered =
        (u128::from(fuel_used) * u128::from(micros_per_mfuel)).div_ceil(u128::from(FUEL_PER_MFUEL));
    let total = u128::from(price_micros) + metered;
    u64::try_from(total).unwrap_or(u64::MAX)
}

/// The fuel a cap of `max_price_micros` pays for, at most `fuel_per_call_max`.
/// `None` as cap means "as much as the host allows".
pub fn fuel_for_cap(
    max_price_micros: Option<u64>,
    price_micros: u64,
    micros_per_mfuel: u64,
    fuel_per_call_max: u64,
) -> Result<u64, CapBelowPrice> {
    let Some(cap) = max_price_micros else {
        return Ok(fuel_per_call_max);
    };
    let Some(budget) = cap.checked_sub(price_micros) else {
        return Err(CapBelowPrice {
            max_price_micros: cap,
            price_micros,
        });
    };
    if micros_per_mfuel == 0 {
        return Ok(fuel_per_call_max);
    }
    let fuel = u128::from(budget) * u128::from(FUEL_PER_MFUEL) / u128::from(micros_per_mfuel);
    Ok(u64::try_from(fuel)
        .unwrap_or(u64::MAX)
        .min(fuel_per_call_max))
}

/// Basis points in one whole (100%).
pub const BPS: u64 = 10_000;

/// The largest amount the API takes, in micros: 2⁵³ − 1, exact in the
/// doubles JSON clients (and RFC 8785 receipts) read numbers as.
pub const MICROS_MAX: u64 = (1 << 53) - 1;

/// The marketplace fee on a cost: `ceil(cost × fee_bps / 10,000)`.
pub fn fee_micros(cost_micros: u64, fee_bps: u64) -> u64 {
    let fee = (u128::from(cost_micros) * u128::from(fee_bps)).div_ceil(u128::from(BPS));
    u64::try_from(fee).unwrap_or(u64::MAX)
}

/// What the consumer is charged for a cost: the cost plus the fee.
pub fn charged_micros(cost_micros: u64, fee_bps: u64) -> u64 {
    cost_micros.saturating_add(fee_micros(cost_micros, fee_bps))
}

/// The largest cost whose charge (cost + fee) fits in `cap`.
pub fn cost_within(cap: u64, fee_bps: u64) -> u64 {
    let guess = u128::from(cap) * u128::from(BPS) / (u128::from(BPS) + u128::from(fee_bps));
    let mut cost = u64::try_from(guess).unwrap_or(u64::MAX);
    while cost > 0 && charged_micros(cost, fee_bps) > cap {
        cost -= 1;
    }
    cost
}

/// The most a call can cost at the host's fuel cap: the default hold.
pub fn max_cost_micros(price_micros: u64, micros_per_mfuel: u64, fuel_per_call_max: u64) -> u64 {
    cost_micros(price_micros, micros_per_mfuel, fuel_per_call_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_rounds_metered_part_up() {
        assert_eq!(cost_micros(1_000, 100, 0), 1_000);
        assert_eq!(cost_micros(1_000, 100, 1), 1_001);
        assert_eq!(cost_micros(1_000, 100, 10_000), 1_001);
        assert_eq!(cost_micros(1_000, 100, 10_001), 1_002);
        assert_eq!(cost_micros(0, 0, u64::MAX), 0);
        assert_eq!(cost_micros(u64::MAX, u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn fuel_for_cap_never_buys_more_than_the_cap() {
        for (cap, price, rate) in [
            (1_500, 1_000, 100),
            (1_000, 1_000, 7),
            (99_999, 3, 13),
            (10, 0, 1_000_000),
        ] {
            let fuel = fuel_for_cap(Some(cap), price, rate, u64::MAX).unwrap_or(0);
            assert!(
                cost_micros(price, rate, fuel) <= cap,
                "cap {cap} price {price} rate {rate}"
            );
            assert!(cost_micros(price, rate, fuel + 1) > cap || fuel == u64::MAX);
        }
    }

    #[test]
    fn the_fee_rounds_up_and_a_charge_never_passes_its_cap() {
        assert_eq!(fee_micros(0, 100), 0);
        assert_eq!(fee_micros(1, 100), 1);
        assert_eq!(fee_micros(10_000, 100), 100);
        assert_eq!(fee_micros(10_001, 100), 101);
        for cap in [0, 1, 2, 99, 100, 101, 5_000, 1_000_003, u64::MAX / 3] {
            for bps in [0, 1, 100, 250, 10_000] {
                let cost = cost_within(cap, bps);
                assert!(charged_micros(cost, bps) <= cap, "cap {cap} bps {bps}");
                assert!(
                    charged_micros(cost + 1, bps) > cap,
                    "cap {cap} bps {bps}: not the largest"
                );
            }
        }
    }

    #[test]
    fn cap_below_price_is_refused_and_free_fuel_is_capped() {
        assert_eq!(
            fuel_for_cap(Some(999), 1_000, 1, 10),
            Err(CapBelowPrice {
                max_price_micros: 999,
                price_micros: 1_000
            })
        );
        assert_eq!(fuel_for_cap(Some(1_000), 1_000, 0, 10), Ok(10));
        assert_eq!(fuel_for_cap(None, 5, 5, 10), Ok(10));
    }
}
