//! Sizes a user gives (matrix dimensions, batch sizes, model widths, array shapes in a file)
//! are checked before anything is allocated: their products with checked arithmetic, and the
//! bytes they would need against a memory budget. An impossible size is then a clear error
//! naming the field and the memory it would need, not an allocation abort or a wrapped product.

use std::fmt;
use std::sync::OnceLock;

use thiserror::Error;

/// A size that cannot be allocated.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SizeError {
    /// A product of sizes that does not fit in 64 bits.
    #[error("{what}: {dims} elements do not fit in 64 bits")]
    Overflow {
        /// What the size is of, in the user's terms (`--m x --k (matrix A)`).
        what: String,
        /// The factors, `a x b x ...`.
        dims: String,
    },
    /// More memory than the budget.
    #[error(
        "{what} would need {} of memory, more than the budget of {} ({})",
        Bytes(*needed),
        Bytes(u128::from(*budget)),
        BUDGET_SOURCE
    )]
    TooLarge {
        /// What the size is of, in the user's terms.
        what: String,
        /// Bytes it would need.
        needed: u128,
        /// The budget, bytes.
        budget: u64,
    },
}

/// Where the budget comes from, for the message.
const BUDGET_SOURCE: &str = "this machine's physical memory";

/// The budget when the physical memory cannot be read (not Linux): 16 GiB.
const FALLBACK_BUDGET: u64 = 16 << 30;

/// A byte count printed with a binary unit (`7.3 TiB`).
struct Bytes(u128);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let mut v = self.0 as f64;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} bytes", self.0)
        } else {
            write!(f, "{v:.1} {}", UNITS[unit])
        }
    }
}

/// The memory budget in bytes: the machine's physical memory (`MemTotal` of `/proc/meminfo`),
/// or 16 GiB where that cannot be read. Nothing one run allocates at once may exceed it.
pub fn memory_budget() -> u64 {
    static BUDGET: OnceLock<u64> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                kib.checked_mul(1024)
            })
            .unwrap_or(FALLBACK_BUDGET)
    })
}

/// The number of elements of an array of shape `dims`, or [`SizeError::Overflow`].
pub fn elements(what: impl fmt::Display, dims: &[usize]) -> Result<usize, SizeError> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| SizeError::Overflow {
            what: what.to_string(),
            dims: dims
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" x "),
        })
}

/// Ok when `bytes` fit in the [`memory_budget`], else [`SizeError::TooLarge`].
pub fn check_bytes(what: impl fmt::Display, bytes: u128) -> Result<(), SizeError> {
    let budget = memory_budget();
    if bytes > u128::from(budget) {
        return Err(SizeError::TooLarge {
            what: what.to_string(),
            needed: bytes,
            budget,
        });
    }
    Ok(())
}

/// The element count of shape `dims` after checking that `dims` elements of `bytes_each` bytes
/// fit in 64 bits and in the memory budget.
pub fn check_array(
    what: impl fmt::Display,
    dims: &[usize],
    bytes_each: usize,
) -> Result<usize, SizeError> {
    let what = what.to_string();
    let n = elements(&what, dims)?;
    check_bytes(&what, n as u128 * bytes_each as u128)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_and_budget() {
        assert_eq!(elements("x", &[3, 4, 5]), Ok(60));
        assert_eq!(elements("x", &[]), Ok(1));
        assert!(matches!(
            elements("x", &[usize::MAX, 2]),
            Err(SizeError::Overflow { .. })
        ));
        assert_eq!(check_array("x", &[1000, 1000], 8), Ok(1_000_000));
        let e = check_array("--m x --k (matrix A)", &[1 << 20, 1 << 20], 8).unwrap_err();
        assert!(matches!(e, SizeError::TooLarge { needed, .. } if needed == 8 << 40));
        assert!(
            e.to_string()
                .contains("--m x --k (matrix A) would need 8.0 TiB"),
            "{e}"
        );
        assert_eq!(Bytes(1023).to_string(), "1023 bytes");
        assert_eq!(Bytes(3 << 29).to_string(), "1.5 GiB");
    }
}
