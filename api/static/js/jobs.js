// Job cards: status and progress while a job runs; then its inputs and results side by side,
// each result with its provenance; for training jobs the sample grids and the loss curve.

import { blobUrl, getJson, postJson } from "./api.js";
import { drawLossChart } from "./chart.js";
import { el } from "./dom.js";
import { showProvenance } from "./provenance.js";
import { previewOf } from "./uploads.js";
import { TERMINAL, watchJob } from "./watch.js";

const LOSS_LOG = "losses.json";
// The log is rewritten with each checkpoint and sample grid: read again when a grid appears,
// at the end, and now and then in between (checkpoints list nothing new).
const LOSS_REREAD_MS = 15000;

export class JobList {
  constructor(root, onError) {
    this.root = root;
    this.onError = onError;
    this.cards = new Map();
    this.stop = new AbortController();
  }

  show(job, { first = true } = {}) {
    if (this.cards.has(job.id)) return;
    const card = new JobCard(job, this.onError);
    this.cards.set(job.id, card);
    if (first) this.root.prepend(card.node);
    else this.root.append(card.node);
    card.update(job);
    if (!TERMINAL.has(job.status)) {
      watchJob(job.id, (next) => card.update(next), this.stop.signal).catch((error) => {
        if (error.name !== "AbortError") this.onError(error);
      });
    }
  }

  clear() {
    this.stop.abort();
    this.stop = new AbortController();
    this.cards.clear();
    this.root.replaceChildren();
  }
}

class JobCard {
  constructor(job, onError) {
    this.onError = onError;
    this.shownResults = new Set();
    this.shownSamples = new Set();
    this.lossReadAt = 0;
    this.status = el("span", { class: "status" });
    this.cancel = el("button", { type: "button", class: "small", onclick: () => this.requestCancel(job.id) }, "Cancel");
    this.bar = el("progress", { max: 1 });
    this.message = el("span", { class: "progress-message" });
    this.error = el("p", { class: "error", hidden: true });
    this.inputs = el("div", { class: "inputs" }, inputFigures(job));
    this.results = el("div", { class: "results" });
    this.chart = el("canvas", { class: "loss-chart", hidden: true });
    this.samples = el("div", { class: "samples" });
    this.node = el("li", { class: `job kind-${job.kind}`, "data-job-id": job.id },
      el("header", {}, el("h3", {}, job.kind.replace("_", " ")), el("code", { title: job.id }, job.id.slice(0, 12)),
        this.status, this.cancel),
      el("p", { class: "summary" }, summary(job)),
      el("div", { class: "progress" }, this.bar, this.message),
      this.error,
      el("div", { class: "pair" }, this.inputs, el("span", { class: "arrow", "aria-hidden": "true" }, "→"),
        this.results),
      job.kind === "training" ? el("div", { class: "training" }, this.chart, this.samples) : null);
  }

  update(job) {
    this.node.dataset.status = job.status;
    this.status.textContent = job.status;
    this.status.className = `status status-${job.status}`;
    this.cancel.hidden = TERMINAL.has(job.status);
    const fraction = job.status === "succeeded" ? 1 : job.progress?.fraction;
    if (typeof fraction === "number") this.bar.value = fraction;
    else this.bar.removeAttribute("value");
    this.bar.hidden = TERMINAL.has(job.status) && job.status !== "succeeded";
    this.message.textContent = [job.progress?.stage, job.progress?.message].filter(Boolean).join(": ");
    this.error.hidden = !job.error;
    this.error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
    for (const result of job.results || []) this.showResult(job, result);
    if (job.kind === "training") this.showTraining(job);
  }

  showResult(job, result) {
    if (this.shownResults.has(result.index)) return;
    this.shownResults.add(result.index);
    if (result.content_type === "application/json") {
      this.showReport(job, result);
      return;
    }
    const name = resultName(job, result);
    // Small results (a 32 px creation) are enlarged with crisp pixels, not blurred.
    const picture = el("img", { alt: name, class: `result-image pending${result.width < 128 ? " small-image" : ""}` });
    const download = el("a", { class: "button small", download: `${job.id}-${result.index}.png`, hidden: true },
      "Download");
    blobUrl(result.url).then((url) => {
      picture.src = url;
      picture.classList.remove("pending");
      download.href = url;
      download.hidden = false;
    }, this.onError);
    const provenance = el("button", { type: "button", class: "small provenance",
      onclick: () => showProvenance(result.provenance_url, `Provenance of ${name}, job ${job.id.slice(0, 12)}`) },
      "Provenance");
    this.results.classList.toggle("many", (job.results || []).length > 2);
    this.results.append(el("figure", { class: "result", "data-index": result.index }, picture,
      el("figcaption", {}, el("span", {}, `${name} · ${result.width}×${result.height}`), provenance, download)));
  }

  // An analysis report beside the work: its words, palette, nearest styles and similar works.
  showReport(job, result) {
    const name = resultName(job, result);
    const body = el("div", { class: "report pending" }, "reading the report…");
    getJson(result.url).then((report) => {
      body.classList.remove("pending");
      body.replaceChildren(...reportView(report));
    }, this.onError);
    const provenance = el("button", { type: "button", class: "small provenance",
      onclick: () => showProvenance(result.provenance_url, `Provenance of ${name}, job ${job.id.slice(0, 12)}`) },
      "Provenance");
    this.results.append(el("figure", { class: "result report-result", "data-index": result.index }, body,
      el("figcaption", {}, el("span", {}, name), provenance)));
  }

  showTraining(job) {
    const artifacts = job.artifacts || [];
    const samples = artifacts.filter((a) => a.content_type === "image/png" && !this.shownSamples.has(a.name));
    for (const artifact of samples) {
      this.shownSamples.add(artifact.name);
      const step = Number((artifact.name.match(/(\d+)/) || [])[1]);
      const picture = el("img", { alt: `samples at step ${step}`, class: "pending" });
      blobUrl(artifact.url).then((url) => { picture.src = url; picture.classList.remove("pending"); }, this.onError);
      this.samples.prepend(el("figure", {}, picture, el("figcaption", {}, `samples · step ${step}`)));
    }
    const log = artifacts.find((a) => a.name === LOSS_LOG);
    const done = TERMINAL.has(job.status);
    const due = done || samples.length > 0 || Date.now() - this.lossReadAt > LOSS_REREAD_MS;
    if (log && due && !this.lossFinal) {
      this.lossReadAt = Date.now();
      this.lossFinal = done;
      getJson(log.url, { cache: "no-store" }).then((points) => {
        this.chart.hidden = false;
        drawLossChart(this.chart, points);
      }, this.onError);
    }
  }

  async requestCancel(id) {
    try {
      this.update(await postJson(`/v1/jobs/${id}/cancel`));
    } catch (error) {
      this.onError(error);
    }
  }
}

function reportView(report) {
  const words = report.description || {};
  const parts = [words.en, words.zh].filter(Boolean).map((text) => el("p", { class: "description" }, text));
  const swatches = (report.palette || []).map((colour) => {
    const swatch = el("span", { class: "swatch", title: `${colour.name_en} · ${colour.name_zh} · ${colour.hex}` });
    swatch.style.backgroundColor = colour.hex;  // CSSOM, allowed by the page's style-src policy
    swatch.style.flexGrow = String(colour.share);
    return swatch;
  });
  parts.push(el("div", { class: "palette-strip" }, swatches));
  parts.push(el("p", { class: "palette-names" }, (report.palette || [])
    .map((c) => `${c.name_en} ${Math.round(c.share * 100)}%`).join(" · ")));
  const styles = (report.style?.top || []).map((s) => `${s.name} ${s.score.toFixed(2)}`).join(" · ");
  if (styles) parts.push(el("p", { class: "styles" }, `nearest styles: ${styles}`));
  const similar = (report.similar_works || []).map((w) =>
    el("li", {}, `${w.kind === "result" ? `result ${w.result} of job ${w.id.slice(0, 12)}` : `upload ${w.id.slice(0, 12)}`}`
      + ` · ${Math.round(w.score * 100)}%`));
  if (similar.length) parts.push(el("details", {}, el("summary", {}, "similar works of yours"), el("ol", {}, similar)));
  return parts;
}

function resultName(job, result) {
  if (result.role === "report") return result.describes === undefined ? "report" : `report on result ${result.describes}`;
  if (result.role === "annotated") return "annotated";
  if (job.kind === "restoration" && result.index === 1) return "mask used";
  if (job.kind === "training") return "evaluation grid";
  return `result ${result.index}`;
}

function inputFigures(job) {
  if (job.inputs?.job) {  // an analysis of one of your results
    return el("p", { class: "asked" }, `result ${job.inputs.result} of job ${String(job.inputs.job).slice(0, 12)}`);
  }
  const entries = Object.entries(job.inputs || {});
  if (!entries.length) {
    const p = job.params || {};
    const asked = [p.prompt && `“${p.prompt}”`, p.style && `style ${p.style}`, p.model && `model ${p.model}`,
                   p.dataset && `dataset ${p.dataset}`].filter(Boolean);
    return el("p", { class: "asked" }, asked.join(" · ") || job.kind);
  }
  return entries.map(([role, id]) => {
    const upload = previewOf(id);
    const picture = upload?.preview ? el("img", { src: upload.preview, alt: `${role} input` }) : thumbnailOf(id, role);
    return el("figure", { class: "input" }, picture, el("figcaption", {}, role));
  });
}

// An input uploaded elsewhere (another session, the CLI): the API's thumbnail of it, once loaded;
// the placeholder stays if there is none (an input that is not an upload, or one no longer there).
function thumbnailOf(id, role) {
  const placeholder = el("div", { class: "no-preview" }, `upload ${String(id).slice(0, 8)}`);
  blobUrl(`/v1/uploads/${encodeURIComponent(id)}/thumbnail`).then(
    (url) => placeholder.replaceWith(el("img", { src: url, alt: `${role} input`, class: "input-thumbnail" })),
    () => {});
  return placeholder;
}

function summary(job) {
  const p = job.params || {};
  const parts = Object.entries(p).filter(([, v]) => v !== null && typeof v !== "object")
    .map(([k, v]) => `${k} ${v}`);
  if (Array.isArray(p.operations)) parts.unshift(`operations ${p.operations.join(", ")}`);
  return parts.join(" · ");
}
