//! The results of one run, the markdown report with its target verdicts, and SVG charts.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::measure::{FanOut, IdleMemory, Large, Throughput};

/// Everything one `run` measured.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Results {
    pub(crate) quick: bool,
    pub(crate) runs: usize,
    pub(crate) workers: usize,
    pub(crate) warmup_s: f64,
    pub(crate) window_s: f64,
    pub(crate) machine: Vec<(String, String)>,
    pub(crate) versions: Vec<(String, String)>,
    pub(crate) throughput: Vec<Row<Throughput>>,
    pub(crate) idle: Vec<Row<IdleMemory>>,
    pub(crate) fan_out: Vec<FanOut>,
    pub(crate) large: Vec<Row<Large>>,
    pub(crate) seconds: f64,
}

/// The runs of one scenario on one target.
#[derive(Debug, Serialize)]
pub(crate) struct Row<T> {
    pub(crate) scenario: String,
    pub(crate) target: String,
    pub(crate) runs: Vec<T>,
}

impl<T> Row<T> {
    fn stat(&self, f: impl Fn(&T) -> f64) -> Stat {
        Stat::of(self.runs.iter().map(f).collect())
    }
}

/// Median and range over runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stat {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Stat {
    fn of(mut v: Vec<f64>) -> Stat {
        if v.is_empty() {
            return Stat { median: f64::NAN, min: f64::NAN, max: f64::NAN };
        }
        v.sort_by(f64::total_cmp);
        let median = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
        Stat { median, min: v[0], max: v[v.len() - 1] }
    }

    fn show(&self, digits: usize) -> String {
        if self.min == self.max {
            fmt_num(self.median, digits)
        } else {
            format!("{} ({}–{})", fmt_num(self.median, digits), fmt_num(self.min, digits), fmt_num(self.max, digits))
        }
    }
}

fn fmt_num(v: f64, digits: usize) -> String {
    if v.is_nan() {
        return "n/a".to_owned();
    }
    if digits == 0 && v.abs() >= 10_000.0 {
        // Thousands separators for req/s figures.
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        return out;
    }
    format!("{v:.digits$}")
}

impl Results {
    fn throughput(&self, scenario: &str, target: &str) -> Option<&Row<Throughput>> {
        self.throughput.iter().find(|r| r.scenario == scenario && r.target == target)
    }

    fn median(&self, scenario: &str, target: &str, f: impl Fn(&Throughput) -> f64) -> f64 {
        self.throughput(scenario, target).map_or(f64::NAN, |r| r.stat(f).median)
    }

    /// The issue's targets: (name, goal, measured, met).
    pub(crate) fn verdicts(&self) -> Vec<(String, String, String, bool)> {
        let mut out = Vec::new();
        let cpu = |t: &str| self.median("64x16", t, |m| m.server_cpu_us_per_request);
        let echo_cpu = cpu("raw-echo");
        for t in ["witrpc-json", "witrpc-msgpack"] {
            let ratio = cpu(t) / echo_cpu;
            out.push((
                format!("server CPU per call, {t}, 64×16"),
                "≤ 2× raw echo CPU per frame".to_owned(),
                format!("{:.2} µs vs {:.2} µs = {ratio:.2}×", cpu(t), echo_cpu),
                ratio <= 2.0,
            ));
        }
        let rps = |t: &str| self.median("64x16", t, |m| m.requests_per_s);
        let ratio = rps("witrpc-json") / rps("jsonrpsee");
        out.push((
            "req/s at 64×16, witrpc-json vs jsonrpsee".to_owned(),
            "≥ 5×".to_owned(),
            format!("{} vs {} = {ratio:.2}×", fmt_num(rps("witrpc-json"), 0), fmt_num(rps("jsonrpsee"), 0)),
            ratio >= 5.0,
        ));
        let p99 = |t: &str| self.median("1000x1", t, |m| m.p99_us);
        out.push((
            "p99 at 1000×1, witrpc-json vs jsonrpsee".to_owned(),
            "≤ jsonrpsee".to_owned(),
            format!("{:.0} µs vs {:.0} µs", p99("witrpc-json"), p99("jsonrpsee")),
            p99("witrpc-json") <= p99("jsonrpsee"),
        ));
        if let Some(row) = self
            .idle
            .iter()
            .filter(|r| r.target == "witrpc-json")
            .max_by_key(|r| r.runs.first().map_or(0, |m| m.connections))
        {
            let n = row.runs.first().map_or(0, |m| m.connections);
            let bytes = row.stat(|m| m.bytes_per_connection).median;
            out.push((
                format!("server memory per idle authorized connection at {n}"),
                "≤ 8 KB (8,000 bytes)".to_owned(),
                format!("{bytes:.0} bytes"),
                bytes <= 8000.0,
            ));
        }
        let fan = Stat::of(self.fan_out.iter().map(|f| f.deliveries_per_s).collect()).median;
        if let Some(first) = self.fan_out.first() {
            out.push((
                format!("event deliveries/s to {} clients", first.clients),
                "≥ 500,000".to_owned(),
                fmt_num(fan, 0),
                fan >= 500_000.0,
            ));
        }
        for scenario in ["64x16", "1x1"] {
            let plain = self.median(scenario, "witrpc-json", |m| m.requests_per_s);
            let sealed = self.median(scenario, "witrpc-encrypted", |m| m.requests_per_s);
            let cost = 1.0 - sealed / plain;
            out.push((
                format!("cost of encryption in req/s, {scenario}"),
                "≤ 25%".to_owned(),
                format!("{} vs {} = {:.1}%", fmt_num(sealed, 0), fmt_num(plain, 0), cost * 100.0),
                cost <= 0.25,
            ));
        }
        // A run limited to some targets or parts cannot judge the others.
        out.retain(|(_, _, measured, _)| !measured.contains("NaN") && !measured.contains("n/a"));
        out
    }

    /// The report as markdown; `charts` is the folder prefix for the SVG links.
    pub(crate) fn markdown(&self, charts: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# witrpc benchmark report\n");
        let _ = writeln!(
            md,
            "witrpc (JSON, MessagePack, encrypted JSON) against jsonrpsee and a raw tokio-tungstenite echo, \
             measured in one run of `cargo xtask bench{}` on one machine. Every server runs in its own release-mode \
             process with {} tokio worker threads; the load generator is a separate process on the same machine. \
             Each figure is the median of {} run(s), interleaved across servers, with the min–max range in parentheses.\n",
            if self.quick { " --quick" } else { "" },
            self.workers,
            self.runs
        );
        if self.quick {
            let _ = writeln!(
                md,
                "**Quick mode**: short windows, fewer connections; the figures only show the harness works.\n"
            );
        }
        let _ = writeln!(md, "## Targets\n\n| target | goal | measured | |\n|---|---|---|---|");
        for (name, goal, measured, met) in self.verdicts() {
            let _ = writeln!(md, "| {name} | {goal} | {measured} | {} |", if met { "met" } else { "**not met**" });
        }
        let _ = writeln!(
            md,
            "\n## Calls: `Add(a, b)`\n\nC×D = C connections × D requests in flight each (closed loop); \
             warm-up {:.1} s, measured window {:.1} s. Latency in µs; server CPU = user+system time of the server process \
             during the window (/proc) per completed request.\n",
            self.warmup_s, self.window_s
        );
        let _ = writeln!(md, "![requests per second]({charts}requests.svg)\n");
        let _ = writeln!(
            md,
            "| scenario | server | req/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/req |\n|---|---|---:|---:|---:|---:|---:|"
        );
        for row in &self.throughput {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.scenario.replace('x', "×"),
                row.target,
                row.stat(|m| m.requests_per_s).show(0),
                row.stat(|m| m.p50_us).show(0),
                row.stat(|m| m.p99_us).show(0),
                row.stat(|m| m.p999_us).show(0),
                row.stat(|m| m.server_cpu_us_per_request).show(2),
            );
        }
        let _ = writeln!(md, "\n![latency percentiles at 64×16]({charts}latency-64x16.svg)\n");
        let _ = writeln!(md, "![latency percentiles at 1000×1]({charts}latency-1000x1.svg)\n");
        let _ = writeln!(md, "![server CPU per request]({charts}cpu.svg)\n");
        let _ = writeln!(
            md,
            "## Idle connections\n\nServer RSS growth per connection, after one warm connection; witrpc connections are authorized.\n"
        );
        let _ =
            writeln!(md, "| server | connections | bytes per connection | RSS before → after |\n|---|---:|---:|---|");
        for row in &self.idle {
            let n = row.runs.first().map_or(0, |m| m.connections);
            let before = row.stat(|m| m.rss_before as f64 / 1e6).median;
            let after = row.stat(|m| m.rss_after as f64 / 1e6).median;
            let _ = writeln!(
                md,
                "| {} | {n} | {} | {before:.1} MB → {after:.1} MB |",
                row.target,
                row.stat(|m| m.bytes_per_connection).show(0)
            );
        }
        if let Some(first) = self.fan_out.first() {
            let _ = writeln!(
                md,
                "\n## Event fan-out\n\n{} authorized witrpc-json clients; one call raises `Tick(sent_at)` {} times in a tight loop \
                 (after a warm-up round). Deliveries/s = clients × events / time until the last client has the last event; \
                 latency = receive time − raise time.\n",
                first.clients, first.events
            );
            let _ = writeln!(md, "| deliveries/s | p50 latency µs | p99 latency µs |\n|---:|---:|---:|");
            let stat = |f: &dyn Fn(&FanOut) -> f64| Stat::of(self.fan_out.iter().map(f).collect());
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                stat(&|f| f.deliveries_per_s).show(0),
                stat(&|f| f.p50_us).show(0),
                stat(&|f| f.p99_us).show(0)
            );
        }
        if !self.large.is_empty() {
            let _ = writeln!(
                md,
                "\n## Large payload\n\nSequential round trips of a 1 MiB value (witrpc `EchoBytes`: base64 in JSON, bin in MessagePack; \
                 jsonrpsee `echo` of a 1 MiB string; raw echo of a 1 MiB frame).\n"
            );
            let _ = writeln!(md, "| server | p50 ms | max ms | MB/s (both directions) |\n|---|---:|---:|---:|");
            for row in &self.large {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    row.target,
                    row.stat(|m| m.p50_ms).show(2),
                    row.stat(|m| m.max_ms).show(2),
                    row.stat(|m| m.megabytes_per_s).show(0)
                );
            }
        }
        let _ = writeln!(md, "\n## Machine and versions\n\n| | |\n|---|---|");
        for (k, v) in self.machine.iter().chain(&self.versions) {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        let _ = writeln!(md, "\nThe run took {:.0} s.", self.seconds);
        md
    }

    /// Writes the SVG charts into `dir`.
    pub(crate) fn write_charts(&self, dir: &Path) -> std::io::Result<()> {
        let scenarios: Vec<String> = unique(self.throughput.iter().map(|r| r.scenario.clone()));
        let targets: Vec<String> = unique(self.throughput.iter().map(|r| r.target.clone()));
        let series = |f: &dyn Fn(&Throughput) -> f64| -> Vec<(String, Vec<f64>)> {
            targets.iter().map(|t| (t.clone(), scenarios.iter().map(|s| self.median(s, t, f)).collect())).collect()
        };
        let labels: Vec<String> = scenarios.iter().map(|s| s.replace('x', "×")).collect();
        std::fs::write(
            dir.join("requests.svg"),
            bar_chart(
                "Requests per second by scenario (C connections × D in flight)",
                &labels,
                &series(&|m| m.requests_per_s),
                Scale::Linear,
                "req/s",
            ),
        )?;
        std::fs::write(
            dir.join("cpu.svg"),
            bar_chart(
                "Server CPU per request (µs, lower is better)",
                &labels,
                &series(&|m| m.server_cpu_us_per_request),
                Scale::Linear,
                "µs",
            ),
        )?;
        for scenario in ["64x16", "1000x1"] {
            let percentiles: Vec<(String, Vec<f64>)> = [("p50", 0), ("p99", 1), ("p99.9", 2)]
                .iter()
                .map(|(name, i)| {
                    let values = targets
                        .iter()
                        .map(|t| {
                            self.median(scenario, t, |m| match i {
                                0 => m.p50_us,
                                1 => m.p99_us,
                                _ => m.p999_us,
                            })
                        })
                        .collect();
                    ((*name).to_owned(), values)
                })
                .collect();
            std::fs::write(
                dir.join(format!("latency-{scenario}.svg")),
                bar_chart(
                    &format!("Latency percentiles at {} (µs, log scale, lower is better)", scenario.replace('x', "×")),
                    &targets,
                    &percentiles,
                    Scale::Log,
                    "µs",
                ),
            )?;
        }
        Ok(())
    }
}

fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Linear,
    Log,
}

const PALETTE: [&str; 6] = ["#2563eb", "#16a34a", "#9333ea", "#f97316", "#64748b", "#dc2626"];

/// A grouped bar chart: one group per label, one bar per series.
fn bar_chart(title: &str, groups: &[String], series: &[(String, Vec<f64>)], scale: Scale, unit: &str) -> String {
    let (width, height) = (900.0, 420.0);
    let (left, right, top, bottom) = (80.0, 20.0, 50.0, 90.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let values = series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite() && *v > 0.0);
    let max = values.clone().fold(0.0f64, f64::max).max(1e-9);
    let min = values.fold(f64::INFINITY, f64::min);
    let (lo, hi) = match scale {
        Scale::Linear => (0.0, nice_ceiling(max)),
        Scale::Log => {
            (10f64.powf(min.max(1e-3).log10().floor()), 10f64.powf(max.log10().ceil().max(min.log10().floor() + 1.0)))
        }
    };
    let y = |v: f64| -> f64 {
        let f = match scale {
            Scale::Linear => v / hi,
            Scale::Log => (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()),
        };
        top + plot_h * (1.0 - f.clamp(0.0, 1.0))
    };
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="28" font-size="16" font-weight="600" text-anchor="middle">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    // Grid and y labels.
    let ticks: Vec<f64> = match scale {
        Scale::Linear => (0..=5).map(|i| hi * f64::from(i) / 5.0).collect(),
        Scale::Log => {
            let mut t = Vec::new();
            let mut v = lo;
            while v <= hi * 1.0001 {
                t.push(v);
                v *= 10.0;
            }
            t
        }
    };
    for t in ticks {
        let ty = y(t);
        let _ =
            writeln!(svg, r##"<line x1="{left}" x2="{}" y1="{ty:.1}" y2="{ty:.1}" stroke="#e5e7eb"/>"##, width - right);
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#374151">{}</text>"##,
            left - 6.0,
            ty + 4.0,
            short(t)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle" fill="#374151">{}</text>"##,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(unit)
    );
    let group_w = plot_w / groups.len().max(1) as f64;
    let bar_w = (group_w * 0.8) / series.len().max(1) as f64;
    for (gi, group) in groups.iter().enumerate() {
        let gx = left + group_w * gi as f64 + group_w * 0.1;
        for (si, (_, values)) in series.iter().enumerate() {
            let v = values.get(gi).copied().unwrap_or(f64::NAN);
            if !v.is_finite() || v <= 0.0 {
                continue;
            }
            let x = gx + bar_w * si as f64;
            let top_y = y(v);
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{top_y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                (bar_w - 2.0).max(1.0),
                (top + plot_h - top_y).max(0.0),
                PALETTE[si % PALETTE.len()],
                escape(&series[si].0),
                short(v)
            );
            if bar_w >= 22.0 {
                let _ = writeln!(
                    svg,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#111827">{}</text>"##,
                    x + bar_w / 2.0 - 1.0,
                    top_y - 3.0,
                    short(v)
                );
            }
        }
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#111827">{}</text>"##,
            gx + group_w * 0.4,
            top + plot_h + 18.0,
            escape(group)
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="#9ca3af"/>"##,
        width - right,
        top + plot_h,
        top + plot_h
    );
    // Legend.
    let legend_y = height - 30.0;
    let item_w = plot_w / series.len().max(1) as f64;
    for (si, (name, _)) in series.iter().enumerate() {
        let lx = left + item_w * si as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/>"#,
            legend_y - 10.0,
            PALETTE[si % PALETTE.len()]
        );
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{legend_y:.1}">{}</text>"#, lx + 16.0, escape(name));
    }
    svg.push_str("</svg>\n");
    svg
}

fn nice_ceiling(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= v {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        let s = Stat::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stat::of(vec![1.0, 4.0]).median, 2.5);
        assert_eq!(Stat::of(vec![12_345.0]).show(0), "12,345");
    }

    #[test]
    fn charts_are_svg_with_one_bar_per_value() {
        let svg = bar_chart(
            "t",
            &["a".into(), "b".into()],
            &[("x".into(), vec![1.0, 2.0]), ("y".into(), vec![3.0, f64::NAN])],
            Scale::Log,
            "µs",
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 3, "NaN values draw no bar");
    }
}
