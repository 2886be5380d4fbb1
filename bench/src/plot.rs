//! The latency-by-percentile plot (`--plot FILE.svg`), written by hand.
//!
//! The x axis is HdrHistogram's: 1/(1-p) on a log scale, so that 90 %,
//! 99 %, 99.9 %, 99.99 % and 99.999 % are equally spaced and the tail gets
//! the room it deserves; the 100 % point (the maximum) sits on the right
//! edge. The y axis is latency, linear from zero, in the unit that suits the
//! largest value.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::report::format_ns;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 60.0;
/// Decades of 1/(1-p) on the x axis: up to 99.999 %.
const DECADES: f64 = 5.0;
const X_LABELS: [&str; 6] = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];

/// Escapes text for SVG content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The unit the y axis uses for values up to `max_ns`: (name, ns per unit).
fn unit_for(max_ns: f64) -> (&'static str, f64) {
    if max_ns < 1e3 {
        ("ns", 1.0)
    } else if max_ns < 1e6 {
        ("µs", 1e3)
    } else if max_ns < 1e9 {
        ("ms", 1e6)
    } else {
        ("s", 1e9)
    }
}

/// A tick step of 1, 2 or 5 times a power of ten giving 4 to 10 ticks up to
/// `max` (in display units).
fn nice_step(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// x position of quantile `q`: log10(1/(1-q)), clamped to the axis.
fn x_of(q: f64) -> f64 {
    let decades = if q >= 1.0 {
        DECADES
    } else {
        (1.0 / (1.0 - q)).log10().clamp(0.0, DECADES)
    };
    LEFT + decades / DECADES * (WIDTH - LEFT - RIGHT)
}

/// Draws the latency-by-percentile curve of a nanosecond histogram as a
/// standalone SVG document titled `title`.
pub fn latency_svg(h: &Histogram<u64>, title: &str) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let max_ns = h.max() as f64;
    let (unit, per_unit) = unit_for(max_ns.max(1.0));
    let step = nice_step(max_ns / per_unit);
    let y_top = ((max_ns / per_unit) / step).ceil().max(1.0) * step;
    let y_of = |ns: f64| TOP + plot_h - (ns / per_unit) / y_top * plot_h;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let subtitle = if h.is_empty() {
        "no samples".to_owned()
    } else {
        format!(
            "{} samples, p50 {}, p99 {}, p99.9 {}, max {}",
            h.len(),
            format_ns(h.value_at_quantile(0.5) as f64),
            format_ns(h.value_at_quantile(0.99) as f64),
            format_ns(h.value_at_quantile(0.999) as f64),
            format_ns(max_ns)
        )
    };
    let _ = writeln!(
        s,
        r##"<text x="{}" y="44" text-anchor="middle" fill="#555">{}</text>"##,
        WIDTH / 2.0,
        escape(&subtitle)
    );

    // Grid and y ticks.
    let _ = writeln!(s, r##"<g stroke="#ddd" stroke-width="1">"##);
    let ticks = (y_top / step).round() as usize;
    for i in 0..=ticks {
        let y = TOP + plot_h - i as f64 / ticks as f64 * plot_h;
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
            LEFT + plot_w
        );
    }
    for d in 0..=DECADES as usize {
        let x = LEFT + d as f64 / DECADES * plot_w;
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/>"#,
            TOP + plot_h
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r#"<g text-anchor="end">"#);
    for i in 0..=ticks {
        let v = i as f64 * step;
        let y = TOP + plot_h - i as f64 / ticks as f64 * plot_h;
        let label = if step.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v}")
        };
        let label = if step < 1.0 {
            format!("{v:.*}", (-step.log10().floor()) as usize)
        } else {
            label
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            escape(&label)
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r#"<g text-anchor="middle">"#);
    for (d, label) in X_LABELS.iter().enumerate() {
        let x = LEFT + d as f64 / DECADES * plot_w;
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}">{label}</text>"#,
            TOP + plot_h + 18.0
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 16.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency ({unit})</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333" stroke-width="1"/>"##
    );

    if !h.is_empty() {
        let mut points = String::new();
        for v in h.iter_quantiles(10) {
            let _ = write!(
                points,
                "{:.1},{:.1} ",
                x_of(v.quantile_iterated_to()),
                y_of(h.highest_equivalent(v.value_iterated_to()) as f64)
            );
        }
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" stroke-linejoin="round" points="{}"/>"##,
            points.trim_end()
        );
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#d62728"><title>max {}</title></circle>"##,
            x_of(1.0),
            y_of(max_ns),
            escape(&format_ns(max_ns))
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::latency_histogram;

    #[test]
    fn steps_and_units() {
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(nice_step(7.0), 2.0);
        assert_eq!(nice_step(0.3), 0.1);
        assert_eq!(unit_for(900.0).0, "ns");
        assert_eq!(unit_for(45_000.0).0, "µs");
        assert_eq!(unit_for(2e7).0, "ms");
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn x_axis_is_log_of_inverse_tail() {
        let x0 = x_of(0.0);
        let x90 = x_of(0.9);
        let x99 = x_of(0.99);
        let x999 = x_of(0.999);
        assert!((x90 - x0 - (x99 - x90)).abs() < 1e-6);
        assert!((x999 - x99 - (x99 - x90)).abs() < 1e-6);
        assert_eq!(x_of(1.0), WIDTH - RIGHT);
    }

    #[test]
    fn empty_histogram_draws_axes() {
        let svg = latency_svg(&latency_histogram(), "empty");
        assert!(svg.contains("no samples") && !svg.contains("<polyline"));
    }
}
