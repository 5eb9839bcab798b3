// Charts of the tuning pages (uPlot, served from our own static files).
// Each <div class="chart" data-chart="kind" data-source="json-script-id"> is drawn once.
(function () {
  function series(data, key) { return data.map((d) => (d[key] == null ? null : d[key] * 100)); }
  const pct = (u, v) => (v == null ? "–" : v.toFixed(1) + "%");
  const draw = {
    history(el, data) {
      const xs = data.map((d) => Date.parse(d.at) / 1000);
      return new uPlot({ width: el.clientWidth, height: 260, series: [{},
        { label: "misroute %", stroke: "#c0362c", value: pct },
        { label: "SLM usage %", stroke: "#0f8a5f", value: pct }],
        axes: [{}, { values: (u, v) => v.map((x) => x + "%") }] },
        [xs, series(data, "misroute"), series(data, "slm_usage")], el);
    },
    pareto(el, data) {
      // Every grid point as a dot, the Pareto front as a line; x = SLM share, y = misroute.
      const points = data.points.filter((p) => p.slm_usage != null && p.misroute.value != null)
        .sort((a, b) => a.slm_usage - b.slm_usage);
      const front = new Map(data.pareto.map((p) => [p.token_threshold + "/" + p.turn_threshold, p]));
      const xs = points.map((p) => p.slm_usage * 100);
      const ys = points.map((p) => p.misroute.value * 100);
      const fs = points.map((p) => (front.has(p.token_threshold + "/" + p.turn_threshold) ? p.misroute.value * 100 : null));
      return new uPlot({ width: el.clientWidth, height: 300, mode: 1,
        scales: { x: { time: false } },
        series: [{ label: "SLM share %" },
          { label: "grid point misroute %", stroke: "#2f5bea", paths: () => null, points: { show: true, size: 5 } },
          { label: "Pareto front", stroke: "#c0362c", spanGaps: true, points: { show: true, size: 7 } }],
        axes: [{ label: "SLM share (%)" }, { label: "misroute (%)" }] }, [xs, ys, fs], el);
    },
    costs(el, data) {
      const xs = data.map((d) => Date.parse(d.day + "T00:00:00Z") / 1000);
      return new uPlot({ width: el.clientWidth, height: 260, series: [{},
        { label: "trace cost $", stroke: "#b54708", value: (u, v) => (v == null ? "–" : "$" + v.toFixed(2)) },
        { label: "attributed cost $ (busy time × $/h)", stroke: "#2f5bea", value: (u, v) => (v == null ? "–" : "$" + v.toFixed(2)) }] },
        [xs, data.map((d) => d.trace_cost), data.map((d) => d.hourly_price_cost)], el);
    },
  };
  function init() {
    if (typeof uPlot === "undefined") return;
    document.querySelectorAll("[data-chart]:not([data-drawn])").forEach((el) => {
      const source = document.getElementById(el.dataset.source);
      if (!source) return;
      el.dataset.drawn = "1";
      draw[el.dataset.chart](el, JSON.parse(source.textContent));
    });
  }
  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSettle", init);
})();
