//! Scratch buffers reused across calls on each thread: the `f32` copies a rounding makes on
//! its way (a tensor narrowed to `f32`, its rounded values) live only inside one call, and
//! allocating them zeroed at every node of every step cost more than the copies (zeroing, and
//! page faults where the allocator had returned the memory). Their contents on entry are
//! whatever the last call left: callers overwrite every element they read.

use std::cell::RefCell;

thread_local! {
    static PAIR: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Run `f` with two `f32` buffers of `n` elements each (contents unspecified), this thread's
/// reused pair, or a fresh pair when a caller up the stack holds it.
pub(crate) fn with_f32_pair<R>(n: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    PAIR.with(|cell| match cell.try_borrow_mut() {
        Ok(mut pair) => {
            let (a, b) = &mut *pair;
            // Grown, never shrunk: a shorter call takes a prefix, so a longer one after it
            // does not zero the tail again.
            for v in [&mut *a, &mut *b] {
                if v.len() < n {
                    v.resize(n, 0.0);
                }
            }
            f(&mut a[..n], &mut b[..n])
        }
        Err(_) => f(&mut vec![0.0; n], &mut vec![0.0; n]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pair has the asked length whatever the last call left, and a nested call gets a
    /// pair of its own.
    #[test]
    fn pairs_have_the_length_asked_and_nest() {
        with_f32_pair(5, |a, b| {
            a.fill(1.0);
            b.fill(2.0);
        });
        let (la, lb, inner) = with_f32_pair(3, |a, b| {
            let inner = with_f32_pair(4, |c, d| {
                c.fill(3.0);
                (c.len(), d.len())
            });
            (a.len(), b.len(), inner)
        });
        assert_eq!((la, lb, inner), (3, 3, (4, 4)));
        with_f32_pair(7, |a, b| assert_eq!((a.len(), b.len()), (7, 7)));
    }
}
