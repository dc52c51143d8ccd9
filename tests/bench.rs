//! The bench's pairing (`lpsim bench`): each kernel run follows a native run, after one warm-up
//! of each, so a ratio compares two runs taken moments apart. Only the order of the runs is
//! checked here; speed is measured by the bench, never asserted in tests.

use std::cell::RefCell;

use lpsim::bench::paired_seconds;

#[test]
fn kernel_and_native_runs_alternate() {
    let log = RefCell::new(Vec::new());
    let timed = paired_seconds(
        3,
        || log.borrow_mut().push('n'),
        || log.borrow_mut().push('k'),
    );
    assert_eq!(log.into_inner(), ['n', 'k', 'n', 'k', 'n', 'k', 'n', 'k']);
    assert!(timed.secs >= 0.0);
}

#[test]
fn zero_repetitions_still_time_one_pair() {
    let count = RefCell::new(0);
    paired_seconds(0, || (), || *count.borrow_mut() += 1);
    assert_eq!(
        count.into_inner(),
        2,
        "one warm-up and one timed kernel run"
    );
}
