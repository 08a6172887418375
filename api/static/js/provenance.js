// A result's provenance record, shown readable: the main facts as a list, the whole record below.

import { getJson } from "./api.js";
import { el } from "./dom.js";

const dialog = () => document.getElementById("provenance");

export async function showProvenance(url, title) {
  const box = dialog();
  const summary = box.querySelector("#provenance-summary");
  const raw = box.querySelector("#provenance-json");
  box.querySelector("#provenance-title").textContent = title;
  summary.replaceChildren(el("p", { class: "muted" }, "loading…"));
  raw.textContent = "";
  if (!box.open) box.showModal();
  try {
    const record = await getJson(url);
    summary.replaceChildren(...facts(record).flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
    raw.textContent = JSON.stringify(record, null, 2);
  } catch (error) {
    summary.replaceChildren(el("p", { class: "error" }, error.describe ? error.describe() : String(error)));
  }
}

export function setUpProvenanceDialog() {
  const box = dialog();
  box.querySelector("#provenance-close").addEventListener("click", () => box.close());
  box.addEventListener("click", (event) => { if (event.target === box) box.close(); });
}

const short = (hash) => (hash ? `${String(hash).slice(0, 16)}…` : "—");
// One hash, or several by name ({"encoder": "…", "decoder": "…"}).
const hashes = (value) => (value && typeof value === "object"
  ? Object.entries(value).map(([name, hash]) => `${name} ${short(hash)}`).join(", ") : short(value));
const text = (value) => (value === undefined || value === null || value === "" ? "—" : String(value));

function facts(r) {
  const model = r.model || {};
  const rights = r.rights || {};
  const disclosure = r.disclosure || {};
  const output = r.output || {};
  const rows = [
    ["Operation", text(r.operation)],
    ["Created", text(r.created_at)],
    ["Job", text(r.job_id)],
    ["Record", `${text(r.record_id)} (#${text(r.sequence)} in the tenant's chain)`],
    ["Requester", `tenant ${text(r.requester?.tenant)}, key ${text(r.requester?.key_id)}`],
    ["Parameters", r.params ? JSON.stringify(r.params) : "—"],
    ["Model", model.name ? `${model.name}${model.version ? `@${model.version}` : ""}` : "—"],
    ["Weights sha256", hashes(model.weights_sha256)],
    ["Code version", text(model.code_version)],
  ];
  for (const input of r.inputs || []) {
    const rightsOf = input.rights_holder
      ? `, ${input.licence ? `${input.licence}, ` : ""}rights held by ${input.rights_holder}` : "";
    rows.push([`Input: ${text(input.role)}`, `sha256 ${short(input.sha256)}${rightsOf}`]);
  }
  for (const data of r.training_data || []) {
    const manifest = data.manifest_sha256 ? `, manifest ${short(data.manifest_sha256)}` : "";
    rows.push(["Training data", `${text(data.dataset_id)} (${text(data.licence)})${manifest}`]);
  }
  rows.push(
    ["Output", `sha256 ${short(output.sha256)}${output.width ? `, ${output.width}×${output.height}` : ""}`],
    ["AI disclosure", `${disclosure.ai_generated ? "AI-generated" : "not AI-generated"}: ${text(disclosure.digital_source_type_code)}`],
    ["Statement", text(disclosure.statement)],
    ["Licence", text(rights.licence)],
    ["Copyright holder", text(rights.copyright_holder)],
    ["Training and mining", text(rights.training_and_mining)],
    ["Marks", marksOf(r.marks || {})],
    ["Signature", r.signature ? `${text(r.signature.alg)}, key ${text(r.signature.key_id)}` : "—"],
  );
  return rows;
}

function marksOf(marks) {
  const found = [];
  if (marks.xmp) found.push("XMP");
  if (marks.c2pa) found.push("C2PA manifest");
  if (marks.watermark) found.push("invisible watermark");
  return found.join(", ") || "—";
}
