//! A log-log line chart rendered to PNG: round-trip latency against payload size, one line
//! per transport. Drawn on a palette canvas with our own bitmap font, so the report needs no
//! graphics library and no font files.

use super::font::{GLYPH_H, GLYPH_W, glyph};
use super::png::encode_indexed;

/// One line of the chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// `(x, y)` points, both positive; drawn in order.
    pub points: Vec<(f64, f64)>,
}

const W: usize = 960;
const H: usize = 600;
const LEFT: usize = 100;
const RIGHT: usize = 240;
const TOP: usize = 50;
const BOTTOM: usize = 70;
const SCALE: usize = 2;

const WHITE: u8 = 0;
const BLACK: u8 = 1;
const GRID: u8 = 2;
const FIRST_SERIES: u8 = 3;
const PALETTE: [[u8; 3]; 12] = [
    [255, 255, 255],
    [0, 0, 0],
    [215, 215, 215],
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [23, 190, 207],
    [188, 189, 34],
];

struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn set(&mut self, x: i64, y: i64, c: u8) {
        if (0..W as i64).contains(&x) && (0..H as i64).contains(&y) {
            self.px[y as usize * W + x as usize] = c;
        }
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: u8) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                self.set(x, y, c);
            }
        }
    }

    /// A line `thick` pixels wide, by stamping squares along it.
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), thick: i64, c: u8) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let (x, y) = (
                (x0 + (x1 - x0) * t).round() as i64,
                (y0 + (y1 - y0) * t).round() as i64,
            );
            self.rect(
                x - thick / 2,
                y - thick / 2,
                x + (thick - 1) / 2,
                y + (thick - 1) / 2,
                c,
            );
        }
    }

    fn text_width(text: &str) -> usize {
        text.chars().count() * (GLYPH_W + 1) * SCALE
    }

    /// Draws `text` with its top-left corner at `(x, y)`.
    fn text(&mut self, x: usize, y: usize, text: &str, c: u8) {
        for (i, ch) in text.chars().enumerate() {
            let gx = x + i * (GLYPH_W + 1) * SCALE;
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                        let (px, py) = ((gx + col * SCALE) as i64, (y + row * SCALE) as i64);
                        self.rect(px, py, px + SCALE as i64 - 1, py + SCALE as i64 - 1, c);
                    }
                }
            }
        }
    }
}

/// The decades `[10^lo, 10^hi]` that cover `values`.
fn decades(values: impl Iterator<Item = f64>) -> (i32, i32) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| *v > 0.0) {
        lo = lo.min(v.log10());
        hi = hi.max(v.log10());
    }
    if lo > hi {
        return (0, 1);
    }
    let (lo, hi) = (lo.floor() as i32, hi.ceil() as i32);
    (lo, hi.max(lo + 1))
}

/// Renders the chart as a PNG. `x_ticks` are the x values to mark, with their labels; the
/// y axis (nanoseconds) is marked at every decade.
pub fn render(title: &str, x_label: &str, x_ticks: &[(f64, String)], series: &[Series]) -> Vec<u8> {
    let mut cv = Canvas {
        px: vec![WHITE; W * H],
    };
    let (plot_w, plot_h) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
    let xs = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(x_ticks.iter().map(|t| t.0))
    };
    let (x_min, x_max) = {
        let (lo, hi) = xs().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        if lo.is_finite() && hi > lo {
            (lo.log10() - 0.15, hi.log10() + 0.15)
        } else {
            (0.0, 1.0)
        }
    };
    let (y_lo, y_hi) = decades(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let to_px = |x: f64, y: f64| {
        let px = LEFT as f64 + (x.log10() - x_min) / (x_max - x_min) * plot_w;
        let py =
            TOP as f64 + plot_h - (y.log10() - f64::from(y_lo)) / f64::from(y_hi - y_lo) * plot_h;
        (px, py)
    };

    for d in y_lo..=y_hi {
        let (_, y) = to_px(10f64.powf(x_min), 10f64.powi(d));
        cv.line((LEFT as f64, y), ((W - RIGHT) as f64, y), 1, GRID);
        let label = ns_label(10f64.powi(d));
        cv.text(
            LEFT.saturating_sub(Canvas::text_width(&label) + 8),
            y as usize - GLYPH_H,
            &label,
            BLACK,
        );
    }
    for (x, label) in x_ticks {
        let (px, _) = to_px(*x, 1.0);
        cv.line((px, TOP as f64), (px, (H - BOTTOM) as f64), 1, GRID);
        let w = Canvas::text_width(label);
        cv.text(
            (px as usize).saturating_sub(w / 2),
            H - BOTTOM + 8,
            label,
            BLACK,
        );
    }
    cv.line(
        (LEFT as f64, TOP as f64),
        (LEFT as f64, (H - BOTTOM) as f64),
        2,
        BLACK,
    );
    cv.line(
        (LEFT as f64, (H - BOTTOM) as f64),
        ((W - RIGHT) as f64, (H - BOTTOM) as f64),
        2,
        BLACK,
    );

    cv.text((W - Canvas::text_width(title)) / 2, 14, title, BLACK);
    let xl = W - RIGHT - Canvas::text_width(x_label);
    cv.text(LEFT + (xl - LEFT) / 2, H - BOTTOM + 36, x_label, BLACK);

    for (i, s) in series.iter().enumerate() {
        let color = FIRST_SERIES + (i % (PALETTE.len() - FIRST_SERIES as usize)) as u8;
        let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| to_px(x, y)).collect();
        for pair in pts.windows(2) {
            cv.line(pair[0], pair[1], 3, color);
        }
        for &(x, y) in &pts {
            let (x, y) = (x.round() as i64, y.round() as i64);
            cv.rect(x - 4, y - 4, x + 4, y + 4, color);
        }
        let ly = TOP + 10 + i * 26;
        let lx = W - RIGHT + 20;
        cv.rect(
            lx as i64,
            ly as i64 + 4,
            lx as i64 + 24,
            ly as i64 + 9,
            color,
        );
        cv.text(lx + 32, ly, &s.name, BLACK);
    }
    encode_indexed(W as u32, H as u32, &cv.px, &PALETTE)
}

/// A decade of nanoseconds as a short label: `100ns`, `1µs`, `10ms`, `1s`.
fn ns_label(ns: f64) -> String {
    let (v, unit) = match ns {
        n if n < 1e3 => (n, "ns"),
        n if n < 1e6 => (n / 1e3, "µs"),
        n if n < 1e9 => (n / 1e6, "ms"),
        n => (n / 1e9, "s"),
    };
    format!("{}{unit}", v.round())
}
