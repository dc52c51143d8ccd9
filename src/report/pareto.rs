//! Pareto fronts: the runs no other run beats on both cost and error.

/// Indices of the points on the Pareto front when both coordinates are minimized (x = energy,
/// y = error): a point is on the front when no other point is at most as large in both
/// coordinates and smaller in one. Points with a NaN or infinite coordinate are never on the
/// front; equal points are on it together. The indices come sorted by x, then y, then index, so
/// joining them draws the front as a staircase from cheap-and-bad to costly-and-good.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].0.is_finite() && points[i].1.is_finite())
        .collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (points[a], points[b]);
        pa.0.total_cmp(&pb.0)
            .then(pa.1.total_cmp(&pb.1))
            .then(a.cmp(&b))
    });
    let mut front: Vec<usize> = Vec::new();
    for i in order {
        let p = points[i];
        let keep = match front.last() {
            None => true,
            // Sorted by x then y: p beats the front so far only with a smaller y, or ties it.
            Some(&last) => p.1 < points[last].1 || p == points[last],
        };
        if keep {
            front.push(i);
        }
    }
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staircase_duplicates_and_nan() {
        let pts = [
            (1.0, 5.0),
            (2.0, 3.0),
            (2.0, 4.0),
            (3.0, 3.0),
            (4.0, 1.0),
            (f64::NAN, 0.0),
            (0.5, f64::INFINITY),
            (4.0, 1.0),
        ];
        assert_eq!(pareto_front(&pts), vec![0, 1, 4, 7]);
        assert!(pareto_front(&[]).is_empty());
    }
}
