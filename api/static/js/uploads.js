// The images uploaded in this session: POST /v1/uploads with the rights declaration, a small
// preview kept in sessionStorage (the API does not serve uploads back), and the pickers that
// choose them as a job's inputs.

import { request } from "./api.js";
import { $, el } from "./dom.js";

const STORE = "artforge.uploads";
const PREVIEW_SIDE = 512;

let uploads = load();

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE)) || [];
  } catch {
    return [];
  }
}

function save() {
  try {
    sessionStorage.setItem(STORE, JSON.stringify(uploads));
  } catch {
    // Storage full: previews last until the page is reloaded.
  }
}

export function previewOf(uploadId) {
  return uploads.find((u) => u.id === uploadId);
}

export function forgetUploads() {
  uploads = [];
  sessionStorage.removeItem(STORE);
  render();
}

export function setUpUploads(onError) {
  const form = $("#upload-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) return;
    const body = new FormData();
    body.append("file", file);
    const declaration = rightsOf(form);
    for (const [name, value] of Object.entries(declaration)) body.append(name, value);
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const upload = await (await request("/v1/uploads", { method: "POST", body })).json();
      uploads.unshift({ id: upload.id, name: file.name, width: upload.width, height: upload.height,
                        rights: Object.keys(declaration).length > 0, preview: await preview(file) });
      save();
      render();
      form.reset();
    } catch (error) {
      onError(error);
    } finally {
      button.disabled = false;
    }
  });
  render();
}

function rightsOf(form) {
  const declaration = {};
  if (form.elements.requester_holds_rights.checked) declaration.requester_holds_rights = "true";
  for (const name of ["licence", "rights_holder"]) {
    const value = form.elements[name].value.trim();
    if (value) declaration[name] = value;
  }
  return declaration;
}

async function preview(file) {
  const bitmap = await createImageBitmap(file).catch(() => null);
  if (!bitmap) return "";  // a format the browser cannot draw (TIFF): no preview
  const scale = Math.min(1, PREVIEW_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = el("canvas", { width: Math.round(bitmap.width * scale), height: Math.round(bitmap.height * scale) });
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL("image/jpeg", 0.85);
}

function label(upload) {
  return `${upload.name} · ${upload.width}×${upload.height}${upload.rights ? " · rights declared" : ""}`;
}

function render() {
  $("#uploads").replaceChildren(...uploads.map((u) => el("li", {},
    u.preview ? el("img", { src: u.preview, alt: u.name }) : el("span", { class: "no-preview" }, "no preview"),
    el("span", {}, label(u)), el("code", {}, u.id.slice(0, 8)))));
  for (const select of document.querySelectorAll("select[data-uploads]")) {
    const chosen = select.value;
    const none = select.dataset.uploads === "optional" ? [el("option", { value: "" }, "none")] : [];
    const options = uploads.map((u) => el("option", { value: u.id }, label(u)));
    const empty = options.length || none.length ? [] : [el("option", { value: "" }, "upload an image first")];
    select.replaceChildren(...none, ...empty, ...options);
    if (uploads.some((u) => u.id === chosen)) select.value = chosen;
  }
}
