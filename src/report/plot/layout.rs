//! Where the labels of a chart's points go: each next to its point when there is room, else
//! further out (the chart then draws a leader line), never over another label, over a marker or
//! outside the plotting area. Pixel coordinates, `y` down, as the SVG has them.

/// An axis-aligned box in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rect {
    /// Left edge.
    pub x0: f64,
    /// Top edge.
    pub y0: f64,
    /// Right edge.
    pub x1: f64,
    /// Bottom edge.
    pub y1: f64,
}

impl Rect {
    /// The box of size `(w, h)` centred on `(cx, cy)`.
    fn centred(cx: f64, cy: f64, (w, h): (f64, f64)) -> Rect {
        Rect {
            x0: cx - w / 2.0,
            y0: cy - h / 2.0,
            x1: cx + w / 2.0,
            y1: cy + h / 2.0,
        }
    }

    /// Whether the two boxes share any interior point.
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    /// Whether `o` lies wholly inside this box.
    fn contains(&self, o: &Rect) -> bool {
        o.x0 >= self.x0 && o.x1 <= self.x1 && o.y0 >= self.y0 && o.y1 <= self.y1
    }

    /// Whether the disc of radius `r` around `(cx, cy)` reaches into the box.
    pub fn hits_disc(&self, (cx, cy, r): (f64, f64, f64)) -> bool {
        let dx = cx - cx.clamp(self.x0, self.x1);
        let dy = cy - cy.clamp(self.y0, self.y1);
        dx * dx + dy * dy < r * r
    }

    /// The point of the box nearest to `(x, y)` (where a leader line ends).
    pub fn nearest(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (x.clamp(self.x0, self.x1), y.clamp(self.y0, self.y1))
    }
}

/// Gap between a marker's edge and its label, pixels.
const GAP: f64 = 3.0;
/// Distance between the rings of candidate places, pixels.
const RING_STEP: f64 = 7.0;
/// Rings tried before a label is given up (about 350 pixels out).
const RINGS: usize = 50;

/// A place for a label of size `sizes[i]` at each point `anchors[i]` (a marker of radius
/// `marker_r`), tried in order: the eight places touching the marker (right first), then rings
/// of places further out, nearest first. A place is taken only if it lies inside `area`, overlaps
/// no label placed before it and reaches into no disc of `obstacles` (`(x, y, radius)`: every
/// marker drawn). `None` for a label that finds no place within [`RINGS`] rings: the chart
/// leaves it out (its point's number still appears in the key beside the plot).
pub(crate) fn place_labels(
    anchors: &[(f64, f64)],
    sizes: &[(f64, f64)],
    marker_r: f64,
    obstacles: &[(f64, f64, f64)],
    area: Rect,
) -> Vec<Option<Rect>> {
    let mut placed: Vec<Rect> = Vec::new();
    anchors
        .iter()
        .zip(sizes)
        .map(|(&(ax, ay), &(w, h))| {
            let free = |r: &Rect| {
                area.contains(r)
                    && !placed.iter().any(|p| p.overlaps(r))
                    && !obstacles.iter().any(|&d| r.hits_disc(d))
            };
            let found = candidates(ax, ay, (w, h), marker_r).find(|r| free(r));
            if let Some(r) = found {
                placed.push(r);
            }
            found
        })
        .collect()
}

/// Candidate boxes around `(ax, ay)`, nearest first.
fn candidates(ax: f64, ay: f64, (w, h): (f64, f64), r: f64) -> impl Iterator<Item = Rect> {
    let d = r + GAP;
    let touching = [
        (ax + d + w / 2.0, ay),
        (ax - d - w / 2.0, ay),
        (ax, ay - d - h / 2.0),
        (ax, ay + d + h / 2.0),
        (ax + d + w / 2.0, ay - d - h / 2.0),
        (ax - d - w / 2.0, ay - d - h / 2.0),
        (ax + d + w / 2.0, ay + d + h / 2.0),
        (ax - d - w / 2.0, ay + d + h / 2.0),
    ]
    .into_iter()
    .map(move |(cx, cy)| Rect::centred(cx, cy, (w, h)));
    let rings = (1..=RINGS).flat_map(move |k| {
        let dist = d + k as f64 * RING_STEP;
        // About one place per 6 pixels of circumference.
        let n = ((std::f64::consts::TAU * dist / 6.0).ceil() as usize).max(8);
        (0..n).map(move |i| {
            let t = std::f64::consts::TAU * i as f64 / n as f64;
            Rect::centred(
                ax + (dist + w / 2.0) * t.cos(),
                ay + (dist + h / 2.0) * t.sin(),
                (w, h),
            )
        })
    });
    touching.chain(rings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AREA: Rect = Rect {
        x0: 0.0,
        y0: 0.0,
        x1: 600.0,
        y1: 400.0,
    };

    /// Asserts the layout's promises and returns how many labels were placed.
    fn check(anchors: &[(f64, f64)], sizes: &[(f64, f64)], r: f64) -> usize {
        let obstacles: Vec<(f64, f64, f64)> = anchors.iter().map(|&(x, y)| (x, y, r)).collect();
        let boxes = place_labels(anchors, sizes, r, &obstacles, AREA);
        assert_eq!(boxes.len(), anchors.len());
        let placed: Vec<(usize, Rect)> = boxes
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.map(|b| (i, b)))
            .collect();
        for (k, &(i, a)) in placed.iter().enumerate() {
            assert!(AREA.contains(&a), "label {i} outside: {a:?}");
            let (w, h) = sizes[i];
            assert!(((a.x1 - a.x0) - w).abs() < 1e-9 && ((a.y1 - a.y0) - h).abs() < 1e-9);
            for &(j, b) in &placed[k + 1..] {
                assert!(!a.overlaps(&b), "labels {i} and {j} overlap: {a:?} {b:?}");
            }
            for (j, o) in obstacles.iter().enumerate() {
                assert!(!a.hits_disc(*o), "label {i} covers marker {j}");
            }
        }
        placed.len()
    }

    #[test]
    fn a_lone_point_is_labelled_right_next_to_it() {
        let b = place_labels(&[(100.0, 100.0)], &[(14.0, 11.0)], 4.0, &[], AREA);
        let b = b[0].unwrap();
        assert_eq!(b.x0, 107.0);
        assert!((b.y0 + b.y1) / 2.0 == 100.0);
    }

    #[test]
    fn forty_coincident_points_get_forty_disjoint_labels() {
        // As on the iris plot, where many configurations share energy and error exactly.
        let anchors = vec![(300.0, 200.0); 40];
        let sizes: Vec<(f64, f64)> = (1..=40)
            .map(|i: usize| (7.0 * i.to_string().len() as f64, 11.0))
            .collect();
        assert_eq!(check(&anchors, &sizes, 4.0), 40);
    }

    #[test]
    fn scattered_and_clustered_points_never_overlap() {
        // A fixed pseudo-random scatter with tight clusters, and points at the area's edges.
        let mut s = 12345u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as f64 / (1u64 << 31) as f64
        };
        let mut anchors = Vec::new();
        for c in 0..6 {
            let (cx, cy) = (50.0 + 100.0 * c as f64, 30.0 + 60.0 * c as f64);
            for _ in 0..8 {
                anchors.push((cx + 20.0 * next(), cy + 10.0 * next()));
            }
        }
        anchors.extend([(0.0, 0.0), (600.0, 400.0), (599.0, 1.0)]);
        let sizes: Vec<(f64, f64)> = (1..=anchors.len())
            .map(|i| (7.0 * i.to_string().len() as f64 + 2.0, 11.0))
            .collect();
        assert_eq!(check(&anchors, &sizes, 7.0), anchors.len());
    }

    #[test]
    fn a_label_with_no_room_is_left_out_not_overlapped() {
        // An area just big enough for one label beside the marker.
        let area = Rect {
            x0: 0.0,
            y0: 0.0,
            x1: 30.0,
            y1: 12.0,
        };
        let anchors = [(5.0, 6.0), (5.0, 6.0)];
        let b = place_labels(&anchors, &[(14.0, 11.0); 2], 4.0, &[(5.0, 6.0, 4.0)], area);
        assert!(b[0].is_some());
        assert_eq!(b[1], None);
    }
}
