//! Charts drawn on the server as SVG strings: no script library, nothing to load, and the
//! page's CSP (no inline style) holds because sizes and colours are SVG attributes. Every
//! piece of text that comes from data is XML-escaped here; templates print the result with
//! `|safe` and nothing else. Each chart is `role="img"` with a `<title>` and a `<desc>`
//! that states the figures, so a screen reader reads the numbers, not the shapes.

use std::fmt::Write;

/// Escapes text for an SVG element or a double-quoted attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The colour of each instance status: one hue each, so no two statuses look alike.
pub fn status_colour(status: &str) -> &'static str {
    use crate::domain::instance::InstanceStatus as S;
    match S::parse(status) {
        Some(S::Authorized) => "#12b76a",
        Some(S::Registered) => "#f79009",
        Some(S::OutOfCompliance) => "#f04438",
        Some(S::NotAuthorized) => "#7a5af8",
        Some(S::AuthorizationExpired) => "#912018",
        Some(S::Reserved) => "#2e90fa",
        None => "#667085",
    }
}

/// One bar: its label, its colour and its figure.
pub struct Bar<'a> {
    pub label: &'a str,
    pub colour: &'a str,
    pub n: i64,
}

const BAR_LABEL_W: f64 = 150.0;
const BAR_AREA_W: f64 = 250.0;
const BAR_ROW: f64 = 32.0;

/// A bar's length on a log scale (`ln(1 + n)`), so 1 next to 120 still shows: any
/// positive figure is at least 4 px, zero is nothing, the largest fills `area`.
pub fn log_length(n: i64, max: i64, area: f64) -> f64 {
    if n <= 0 || max <= 0 {
        return 0.0;
    }
    let len = (1.0 + n as f64).ln() / (1.0 + max as f64).ln() * area;
    len.clamp(4.0, area)
}

/// Horizontal bars on a log scale, labelled with their figures.
pub fn bar_chart(id: &str, title: &str, bars: &[Bar<'_>]) -> String {
    let max = bars.iter().map(|b| b.n).max().unwrap_or(0);
    let height = (bars.len() as f64 * BAR_ROW + 20.0).max(BAR_ROW);
    let width = BAR_LABEL_W + BAR_AREA_W + 50.0;
    let figures: Vec<String> = bars
        .iter()
        .map(|b| format!("{}: {}", b.label, b.n))
        .collect();
    let desc = format!(
        "{}. Bar lengths use a logarithmic scale.",
        figures.join("; ")
    );
    let (id, title) = (escape(id), escape(title));
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="barchart" id="{id}" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{id}-title {id}-desc"><title id="{id}-title">{title}</title><desc id="{id}-desc">{}</desc>"#,
        escape(&desc)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = i as f64 * BAR_ROW;
        let len = log_length(b.n, max, BAR_AREA_W);
        let _ = write!(
            svg,
            r##"<text x="0" y="{ty}" fill="#101828" font-size="14">{label}</text><rect class="bar" x="{BAR_LABEL_W}" y="{y}" width="{len:.1}" height="24" rx="3" fill="{colour}"><title>{label}: {n}</title></rect><text x="{vx:.1}" y="{ty}" fill="#101828" font-size="14" font-weight="600">{n}</text>"##,
            ty = y + 17.0,
            label = escape(b.label),
            colour = escape(b.colour),
            n = b.n,
            vx = BAR_LABEL_W + len + 6.0,
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{BAR_LABEL_W}" y="{}" fill="#667085" font-size="12">log scale</text></svg>"##,
        height - 4.0
    );
    svg
}

/// One line of a line chart: a name for the legend and one value per x position.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub dashed: bool,
    pub values: Vec<i64>,
}

const LC_W: f64 = 640.0;
const LC_H: f64 = 240.0;
const LC_LEFT: f64 = 48.0;
const LC_RIGHT: f64 = 16.0;
const LC_TOP: f64 = 34.0;
const LC_BOTTOM: f64 = 28.0;

/// The smallest of 2, 4, 6 or 10 × 10^k at or above `v`: even, so the middle tick of a
/// count is a whole number too.
pub fn nice_ceiling(v: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [2, 4, 6, 10] {
            if step.saturating_mul(m) >= v {
                return step.saturating_mul(m);
            }
        }
        if step > i64::MAX / 100 {
            return v.max(2);
        }
        step *= 10;
    }
}

fn tick_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Lines over days: `days` are the x positions (labels), each series has one value per day.
pub fn line_chart(
    id: &str,
    title: &str,
    summary: &str,
    days: &[String],
    series: &[Series<'_>],
) -> String {
    let n = days.len();
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    let ymax = nice_ceiling(top) as f64;
    let plot_w = LC_W - LC_LEFT - LC_RIGHT;
    let plot_h = LC_H - LC_TOP - LC_BOTTOM;
    let x = |i: usize| {
        if n <= 1 {
            LC_LEFT + plot_w / 2.0
        } else {
            LC_LEFT + i as f64 * plot_w / (n - 1) as f64
        }
    };
    let y = |v: i64| LC_TOP + plot_h - v as f64 * plot_h / ymax;
    let (eid, etitle) = (escape(id), escape(title));
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="linechart" id="{eid}" viewBox="0 0 {LC_W} {LC_H}" role="img" aria-labelledby="{eid}-title {eid}-desc"><title id="{eid}-title">{etitle}</title><desc id="{eid}-desc">{}</desc>"#,
        escape(summary)
    );
    // Grid and y ticks: 0, half and the top.
    for frac in [0.0, 0.5, 1.0] {
        let v = ymax * frac;
        let gy = LC_TOP + plot_h - plot_h * frac;
        let _ = write!(
            svg,
            r##"<line x1="{LC_LEFT}" y1="{gy:.1}" x2="{x2}" y2="{gy:.1}" stroke="#e4e7ec" stroke-width="1"/><text x="{tx}" y="{ty:.1}" text-anchor="end" fill="#475467">{}</text>"##,
            tick_label(v),
            x2 = LC_W - LC_RIGHT,
            tx = LC_LEFT - 6.0,
            ty = gy + 4.0,
        );
    }
    // X labels: first, middle and last day.
    let mut picks = vec![0usize];
    if n > 2 {
        picks.push(n / 2);
    }
    if n > 1 {
        picks.push(n - 1);
    }
    for i in picks {
        let Some(day) = days.get(i) else { continue };
        let anchor = if n <= 1 || (i > 0 && i < n - 1) {
            "middle"
        } else if i == 0 {
            "start"
        } else {
            "end"
        };
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="{anchor}" fill="#475467">{}</text>"##,
            x(i),
            LC_H - 8.0,
            escape(day)
        );
    }
    // Legend along the top.
    let mut lx = LC_LEFT;
    for s in series {
        let _ = write!(
            svg,
            r##"<line x1="{lx}" y1="12" x2="{:.1}" y2="12" stroke="{}" stroke-width="3"{}/><text x="{:.1}" y="16" fill="#101828">{}</text>"##,
            lx + 18.0,
            escape(s.colour),
            if s.dashed {
                r#" stroke-dasharray="5 3""#
            } else {
                ""
            },
            lx + 24.0,
            escape(s.name)
        );
        lx += 40.0 + s.name.chars().count() as f64 * 7.0;
    }
    for s in series {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let colour = escape(s.colour);
        if points.len() > 1 {
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2.5"{} points="{}"/>"#,
                if s.dashed {
                    r#" stroke-dasharray="5 3""#
                } else {
                    ""
                },
                points.join(" ")
            );
        }
        // Dots where there are few points, so one day alone still shows.
        if s.values.len() <= 31 {
            for (i, v) in s.values.iter().enumerate() {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"><title>{}: {} on {}</title></circle>"#,
                    x(i),
                    y(*v),
                    escape(s.name),
                    v,
                    escape(days.get(i).map_or("", String::as_str))
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::events::Event;

    /// Parses `svg` to the end and returns its text content; panics if it is not XML.
    fn parse(svg: &str) -> String {
        let mut reader = quick_xml::Reader::from_str(svg);
        let mut text = String::new();
        let mut depth = 0i32;
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(_) => depth += 1,
                Event::End(_) => depth -= 1,
                Event::Text(t) => text.push_str(&t.decode().expect("text")),
                Event::GeneralRef(r) => {
                    let name = r.decode().expect("ref").into_owned();
                    text.push_str(match name.as_str() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        _ => "'",
                    });
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0, "balanced elements");
        text
    }

    #[test]
    fn bar_chart_is_xml_escapes_labels_and_states_its_figures() {
        let svg = bar_chart(
            "c",
            "Instances <by> status",
            &[
                Bar {
                    label: "authorized",
                    colour: status_colour("authorized"),
                    n: 120,
                },
                Bar {
                    label: "<script>alert(1)</script> & co",
                    colour: "#000",
                    n: 1,
                },
            ],
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains(r#"role="img""#));
        let text = parse(&svg);
        assert!(text.contains("Instances <by> status"));
        assert!(text.contains("authorized: 120; <script>alert(1)</script> & co: 1."));
    }

    #[test]
    fn log_scale_keeps_one_visible_next_to_a_hundred_and_twenty() {
        let big = log_length(120, 120, 300.0);
        let one = log_length(1, 120, 300.0);
        assert_eq!(big, 300.0);
        // Linear would give 2.5 px; the log scale gives about 43 px.
        assert!(one > 40.0 && one < 50.0, "{one}");
        assert!(log_length(10, 120, 300.0) > one);
        assert_eq!(log_length(0, 120, 300.0), 0.0);
        assert_eq!(log_length(5, 0, 300.0), 0.0);
    }

    #[test]
    fn line_chart_is_xml_with_escaped_labels_and_round_ticks() {
        let days: Vec<String> = ["2026-11-28", "2026-11-29", "2026-11-30"]
            .iter()
            .map(|d| d.to_string())
            .collect();
        let svg = line_chart(
            "u\"1",
            "Usage of \"Adv\" <T&C>",
            "In use 7 of 10 purchased on 2026-11-30.",
            &days,
            &[
                Series {
                    name: "purchased",
                    colour: "#475467",
                    dashed: true,
                    values: vec![10, 10, 10],
                },
                Series {
                    name: "in use",
                    colour: "#1570ef",
                    dashed: false,
                    values: vec![3, 5, 7],
                },
            ],
        );
        let text = parse(&svg);
        assert!(text.contains("Usage of \"Adv\" <T&C>"));
        assert!(text.contains("In use 7 of 10 purchased on 2026-11-30."));
        assert!(text.contains("2026-11-28") && text.contains("2026-11-30"));
        assert!(svg.contains("<polyline"));
        assert_eq!(nice_ceiling(0), 2);
        assert_eq!(nice_ceiling(5), 6);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(10), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(40), 40);
        assert_eq!(nice_ceiling(120), 200);
        // One day alone is a dot, still valid XML.
        let one = line_chart(
            "x",
            "t",
            "s",
            &days[..1],
            &[Series {
                name: "in use",
                colour: "#000",
                dashed: false,
                values: vec![2],
            }],
        );
        parse(&one);
        assert!(one.contains("<circle"));
    }
}
