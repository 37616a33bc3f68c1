// A time-series chart (uPlot, vendored): rates over the last minutes.

import { html, useEffect, useRef, rate } from "./lib.js";

const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700"];

/** The samples there are, over one to five minutes (the last minute before any). */
function timeRange(u, min, max) {
  if (max == null) max = min = Date.now() / 1000;
  return [max - Math.min(300, Math.max(60, max - min)), max];
}

/**
 * `data` is uPlot's columnar data: [unix seconds[], series 1[], ...];
 * `series` names the columns after the first.
 */
export function TimeChart({ title, series, data, height = 170 }) {
  const box = useRef(null);
  const plot = useRef(null);

  useEffect(() => {
    const el = box.current;
    const opts = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      // The samples there are, shown over one to five minutes.
      scales: { x: { time: true, range: timeRange }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [
        { stroke: "#57606a", grid: { stroke: "#eaeef2" }, ticks: { stroke: "#d0d7de" } },
        {
          stroke: "#57606a",
          size: 60,
          grid: { stroke: "#eaeef2" },
          ticks: { stroke: "#d0d7de" },
          values: (u, ticks) => ticks.map((v) => rate(v)),
        },
      ],
      series: [
        {},
        ...series.map((label, i) => ({
          label,
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          points: { show: false },
          value: (u, v) => rate(v),
        })),
      ],
    };
    plot.current = new uPlot(opts, data, el);
    const resize = new ResizeObserver(() => {
      plot.current?.setSize({ width: Math.max(200, el.clientWidth), height });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current.destroy();
      plot.current = null;
    };
  }, [series.join(), height]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <div ref=${box} class="chart-box"></div>
  </figure>`;
}
