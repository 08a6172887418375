// A loss curve on a <canvas>: one line per loss in the log ([{step, d, g, ...}]), shared axes.

const COLOURS = ["#c0392b", "#2471a3", "#7d3c98", "#d68910", "#138d75", "#5d6d7e", "#a04000", "#1e8449"];
const PAD = { left: 52, right: 12, top: 28, bottom: 28 };

export function drawLossChart(canvas, points) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 480;
  const height = canvas.clientHeight || 220;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  g.font = "11px system-ui, sans-serif";

  const names = [...new Set(points.flatMap((p) => Object.keys(p)))].filter((k) => k !== "step");
  const values = points.flatMap((p) => names.map((n) => p[n])).filter(Number.isFinite);
  if (points.length < 2 || !values.length) {
    g.fillStyle = "#777";
    g.fillText("the loss curve appears after the first checkpoint", PAD.left, height / 2);
    return;
  }
  const x0 = points[0].step, x1 = points[points.length - 1].step;
  let y0 = Math.min(...values), y1 = Math.max(...values);
  if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
  const x = (step) => PAD.left + (step - x0) / (x1 - x0 || 1) * (width - PAD.left - PAD.right);
  const y = (v) => height - PAD.bottom - (v - y0) / (y1 - y0) * (height - PAD.top - PAD.bottom);

  drawAxes(g, { width, height, x0, x1, y0, y1, x, y });
  names.forEach((name, i) => {
    g.strokeStyle = COLOURS[i % COLOURS.length];
    g.lineWidth = 1.5;
    g.beginPath();
    let drawing = false;
    for (const p of points) {
      if (!Number.isFinite(p[name])) { drawing = false; continue; }
      if (drawing) g.lineTo(x(p.step), y(p[name]));
      else g.moveTo(x(p.step), y(p[name]));
      drawing = true;
    }
    g.stroke();
  });
  drawLegend(g, names, width);
}

function drawAxes(g, { width, height, x0, x1, y0, y1, x, y }) {
  g.strokeStyle = "#ddd";
  g.fillStyle = "#555";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = y0 + (y1 - y0) * i / 4;
    g.beginPath();
    g.moveTo(PAD.left, y(v));
    g.lineTo(width - PAD.right, y(v));
    g.stroke();
    g.textAlign = "right";
    g.fillText(v.toPrecision(3), PAD.left - 6, y(v) + 4);
  }
  g.textAlign = "center";
  for (let i = 0; i <= 4; i++) {
    const step = Math.round(x0 + (x1 - x0) * i / 4);
    g.fillText(String(step), x(step), height - PAD.bottom + 16);
  }
  g.textAlign = "left";
  g.fillText("step", width - PAD.right - 24, height - 4);
}

function drawLegend(g, names, width) {
  let left = width - PAD.right;
  g.textAlign = "left";
  [...names].reverse().forEach((name) => {
    const i = names.indexOf(name);
    left -= g.measureText(name).width + 22;
    g.fillStyle = COLOURS[i % COLOURS.length];
    g.fillRect(left, 9, 12, 3);
    g.fillStyle = "#333";
    g.fillText(name, left + 16, 14);
  });
}
