//! Drawing the recall–QPS plot as a self-contained SVG document: frame, grid, ticks, axis
//! labels, title, one polyline with markers per series (annotated with nprobe when the plot
//! holds few series), and a legend to the right.

use super::axis::{Axis, format_qps};
use super::data::Series;

/// Plot area size and margins, in SVG user units (pixels).
const PLOT_WIDTH: f64 = 640.0;
const PLOT_HEIGHT: f64 = 440.0;
const LEFT: f64 = 78.0;
const TOP: f64 = 66.0;
const BOTTOM: f64 = 58.0;
const LEGEND_GAP: f64 = 24.0;
const LEGEND_ROW: f64 = 20.0;
/// Space between the frame and the data range, so markers never sit on the frame.
const INSET: f64 = 10.0;
/// Points are annotated with their nprobe up to this many series (more would clutter).
const MAX_SERIES_WITH_NPROBE: usize = 4;
/// Rough advance of one character of 12 px sans-serif, to size the legend box.
const CHAR_WIDTH: f64 = 7.0;

/// Colours for series (by spec, so one spec has one colour in every source).
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];

/// Text of the plot around the data.
pub struct Labels<'a> {
    pub title: &'a str,
    pub subtitle: Option<&'a str>,
    pub x_axis: &'a str,
    pub y_axis: &'a str,
}

/// Renders `series` (non-empty, every point with positive QPS and recall in [0, 1]).
pub fn render(series: &[Series], labels: &Labels) -> String {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let (mut rmin, mut rmax, mut qmin, mut qmax) = (1.0f64, 0.0f64, f64::INFINITY, 0.0f64);
    for p in points() {
        rmin = rmin.min(p.recall);
        rmax = rmax.max(p.recall);
        qmin = qmin.min(p.qps);
        qmax = qmax.max(p.qps);
    }
    let x_axis = Axis::linear(rmin, rmax);
    let y_axis = Axis::log(qmin, qmax);
    let x_at = |recall: f64| LEFT + INSET + x_axis.fraction(recall) * (PLOT_WIDTH - 2.0 * INSET);
    let y_at = |qps: f64| TOP + INSET + (1.0 - y_axis.fraction(qps)) * (PLOT_HEIGHT - 2.0 * INSET);

    let longest = series
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0);
    let legend_x = LEFT + PLOT_WIDTH + LEGEND_GAP;
    let width = legend_x + 44.0 + longest as f64 * CHAR_WIDTH + 16.0;
    let height = (TOP + PLOT_HEIGHT + BOTTOM).max(TOP + LEGEND_ROW * series.len() as f64 + 24.0);

    let mut out = String::new();
    out.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    ));
    out.push_str(&format!("<title>{}</title>\n", escape(labels.title)));
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    out.push_str(&format!(
        "<text class=\"title\" x=\"{:.1}\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" \
         font-weight=\"bold\">{}</text>\n",
        LEFT + PLOT_WIDTH / 2.0,
        escape(labels.title)
    ));
    if let Some(subtitle) = labels.subtitle {
        out.push_str(&format!(
            "<text class=\"subtitle\" x=\"{:.1}\" y=\"44\" text-anchor=\"middle\" \
             fill=\"#444\">{}</text>\n",
            LEFT + PLOT_WIDTH / 2.0,
            escape(subtitle)
        ));
    }

    draw_grid(&mut out, &x_axis, &y_axis, &x_at, &y_at);
    out.push_str(&format!(
        "<rect class=\"frame\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{PLOT_WIDTH}\" \
         height=\"{PLOT_HEIGHT}\" fill=\"none\" stroke=\"black\"/>\n"
    ));
    out.push_str(&format!(
        "<text class=\"xlabel\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
         font-size=\"13\">{}</text>\n",
        LEFT + PLOT_WIDTH / 2.0,
        TOP + PLOT_HEIGHT + 44.0,
        escape(labels.x_axis)
    ));
    let (ylabel_x, ylabel_y) = (22.0, TOP + PLOT_HEIGHT / 2.0);
    out.push_str(&format!(
        "<text class=\"ylabel\" x=\"{ylabel_x}\" y=\"{ylabel_y:.1}\" text-anchor=\"middle\" \
         font-size=\"13\" transform=\"rotate(-90 {ylabel_x} {ylabel_y:.1})\">{}</text>\n",
        escape(labels.y_axis)
    ));

    let mut colors: Vec<&str> = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[color_index(&s.color_key, &mut colors) % PALETTE.len()];
        let dash = if s.dashed {
            " stroke-dasharray=\"7 4\""
        } else {
            ""
        };
        let coords: Vec<String> = s
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x_at(p.recall), y_at(p.qps)))
            .collect();
        out.push_str(&format!(
            "<g class=\"series\" data-label=\"{}\">\n<polyline points=\"{}\" fill=\"none\" \
             stroke=\"{color}\" stroke-width=\"1.8\"{dash}/>\n",
            escape(&s.label),
            coords.join(" ")
        ));
        for p in &s.points {
            let nprobe = p.nprobe.map_or("-".to_string(), |n| n.to_string());
            let tip = format!(
                "{}, nprobe {nprobe}: recall {:.4}, {:.0} QPS",
                s.label, p.recall, p.qps
            );
            let attrs = format!(
                "class=\"point\" data-recall=\"{}\" data-qps=\"{}\" data-nprobe=\"{nprobe}\"",
                p.recall, p.qps
            );
            let (x, y) = (x_at(p.recall), y_at(p.qps));
            marker(&mut out, s.source, x, y, color, &attrs, Some(&tip));
            if let Some(n) = p.nprobe.filter(|_| series.len() <= MAX_SERIES_WITH_NPROBE) {
                // The first source's labels go above right, the others' below left, so
                // labels of close points from two sources rarely collide.
                let (dx, dy, anchor) = if s.source == 0 {
                    (5.0, -5.0, "start")
                } else {
                    (-5.0, 12.0, "end")
                };
                out.push_str(&format!(
                    "<text class=\"nprobe\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" \
                     text-anchor=\"{anchor}\" fill=\"#666\">{n}</text>\n",
                    x + dx,
                    y + dy
                ));
            }
        }
        out.push_str("</g>\n");

        let row_y = TOP + 12.0 + i as f64 * LEGEND_ROW;
        out.push_str(&format!(
            "<g class=\"legend-entry\">\n<line x1=\"{legend_x:.1}\" y1=\"{row_y:.1}\" \
             x2=\"{:.1}\" y2=\"{row_y:.1}\" stroke=\"{color}\" stroke-width=\"1.8\"{dash}/>\n",
            legend_x + 32.0
        ));
        marker(
            &mut out,
            s.source,
            legend_x + 16.0,
            row_y,
            color,
            "class=\"legend-marker\"",
            None,
        );
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n</g>\n",
            legend_x + 40.0,
            row_y + 4.0,
            escape(&s.label)
        ));
    }
    out.push_str("</svg>\n");
    out
}

/// The colour slot of `key`: series of one spec share a colour, in order of appearance.
fn color_index<'a>(key: &'a str, seen: &mut Vec<&'a str>) -> usize {
    match seen.iter().position(|c| *c == key) {
        Some(i) => i,
        None => {
            seen.push(key);
            seen.len() - 1
        }
    }
}

/// Grid lines, tick marks and tick labels of both axes.
fn draw_grid(
    out: &mut String,
    x_axis: &Axis,
    y_axis: &Axis,
    x_at: &dyn Fn(f64) -> f64,
    y_at: &dyn Fn(f64) -> f64,
) {
    let bottom = TOP + PLOT_HEIGHT;
    let right = LEFT + PLOT_WIDTH;
    for tick in &x_axis.ticks {
        let x = x_at(tick.value);
        out.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#e4e4e4\"/>\n\
             <line x1=\"{x:.1}\" y1=\"{bottom}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n",
            bottom + 5.0
        ));
        if let Some(label) = &tick.label {
            out.push_str(&format!(
                "<text class=\"xtick\" data-value=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" \
                 text-anchor=\"middle\">{}</text>\n",
                tick.value,
                bottom + 19.0,
                escape(label)
            ));
        }
    }
    for tick in &y_axis.ticks {
        let y = y_at(tick.value);
        let (grid, length) = match tick.label {
            Some(_) => ("#d8d8d8", 6.0),
            None => ("#f0f0f0", 3.0),
        };
        out.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{y:.2}\" x2=\"{right}\" y2=\"{y:.2}\" stroke=\"{grid}\"/>\n\
             <line x1=\"{:.1}\" y1=\"{y:.2}\" x2=\"{LEFT}\" y2=\"{y:.2}\" stroke=\"black\"/>\n",
            LEFT - length
        ));
        if let Some(label) = &tick.label {
            out.push_str(&format!(
                "<text class=\"ytick\" data-value=\"{}\" x=\"{:.1}\" y=\"{y:.2}\" \
                 text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>\n",
                tick.value,
                LEFT - 9.0,
                escape(label)
            ));
        }
    }
    // Sanity for readers of the file: the axis range in words.
    out.push_str(&format!(
        "<desc>recall {:.4}..{:.4}, QPS {}..{} (log)</desc>\n",
        x_axis.lo,
        x_axis.hi,
        format_qps(y_axis.lo),
        format_qps(y_axis.hi)
    ));
}

/// A marker at (x, y): circle, square, triangle or diamond by source index.
fn marker(
    out: &mut String,
    source: usize,
    x: f64,
    y: f64,
    color: &str,
    attrs: &str,
    tip: Option<&str>,
) {
    let (open, close) = match tip {
        Some(tip) => (">".to_string(), format!("<title>{}</title></", escape(tip))),
        None => ("/>".to_string(), String::new()),
    };
    let tail = |name: &str| {
        if close.is_empty() {
            String::new()
        } else {
            format!("{close}{name}>")
        }
    };
    let shape = match source % 4 {
        0 => format!(
            "<circle {attrs} cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{color}\"{open}{}",
            tail("circle")
        ),
        1 => format!(
            "<rect {attrs} x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"white\" \
             stroke=\"{color}\" stroke-width=\"1.5\" data-cx=\"{x:.1}\" data-cy=\"{y:.1}\"{open}{}",
            x - 3.5,
            y - 3.5,
            tail("rect")
        ),
        2 => format!(
            "<polygon {attrs} points=\"{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" fill=\"{color}\" \
             data-cx=\"{x:.1}\" data-cy=\"{y:.1}\"{open}{}",
            y - 4.5,
            x - 4.5,
            y + 3.5,
            x + 4.5,
            y + 3.5,
            tail("polygon")
        ),
        _ => format!(
            "<polygon {attrs} points=\"{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}\" \
             fill=\"white\" stroke=\"{color}\" stroke-width=\"1.5\" data-cx=\"{x:.1}\" \
             data-cy=\"{y:.1}\"{open}{}",
            y - 4.5,
            x + 4.5,
            y + 4.5,
            x - 4.5,
            tail("polygon")
        ),
    };
    out.push_str(&shape);
    out.push('\n');
}

/// Escapes text for XML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::data::Point;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn one_polyline_per_series_and_markers_on_the_axes() {
        let series = vec![
            Series {
                label: "IVF<4>".into(),
                color_key: "IVF<4>".into(),
                source: 0,
                dashed: false,
                points: vec![
                    Point {
                        recall: 0.5,
                        qps: 1_000.0,
                        nprobe: Some(1),
                    },
                    Point {
                        recall: 0.9,
                        qps: 100.0,
                        nprobe: Some(8),
                    },
                ],
            },
            Series {
                label: "faiss: IVF<4>".into(),
                color_key: "IVF<4>".into(),
                source: 1,
                dashed: true,
                points: vec![Point {
                    recall: 0.7,
                    qps: 300.0,
                    nprobe: None,
                }],
            },
        ];
        let svg = render(
            &series,
            &Labels {
                title: "t",
                subtitle: None,
                x_axis: "x",
                y_axis: "y",
            },
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("stroke-dasharray").count(), 2); // polyline + legend line
        assert!(svg.contains(">faiss: IVF&lt;4&gt;</text>"));
        // Axis 100..1000 exactly: the slow point sits at the bottom of the data range, the
        // fast one at the top.
        assert!(svg.contains(&format!("cy=\"{:.1}\"", TOP + PLOT_HEIGHT - INSET)));
        assert!(svg.contains(&format!("cy=\"{:.1}\"", TOP + INSET)));
    }
}
