// The job forms, one per kind, and the choices they offer (named styles, trained models).
// Each form builds a POST /v1/jobs body; the API validates it and answers with its errors.

import { ApiError, blobUrl, getJson, postJson } from "./api.js";
import { $, el } from "./dom.js";

const DEFAULT_MODEL = { gan: "abstract", restoration: "restoration" };
const RESOLUTIONS = { gan: [32, 64, 128], restoration: [64, 128, 256] };
const STEPS = { gan: 2000, restoration: 1500 };
const THUMBNAIL_TRIES = 12;

const bodies = {
  style_transfer(f) {
    const inputs = { content: f.content.value };
    const params = { strength: Number(f.strength.value), max_side: Number(f.max_side.value),
                     preserve_colors: f.preserve_colors.checked };
    if (f.style_source.value === "painting") {
      if (!f.painting.value) throw new ApiError(0, "form", "choose an uploaded painting as the style");
      inputs.style = f.painting.value;
    } else {
      if (!f.style.value) throw new ApiError(0, "form", "choose a named style");
      params.style = f.style.value;
    }
    return { kind: "style_transfer", inputs, params };
  },
  creation(f) {
    const params = { count: Number(f.count.value), upscale: f.upscale.checked };
    if (f.model.value) params.model = f.model.value;
    if (f.label.value) params.style = f.label.value;
    if (f.prompt.value.trim()) params.prompt = f.prompt.value.trim();
    if (f.seed.value !== "") params.seed = Number(f.seed.value);
    return { kind: "creation", params };
  },
  restoration(f) {
    const inputs = { image: f.image.value };
    if (f.mask.value) inputs.mask = f.mask.value;
    const operations = [...f.operations].filter((box) => box.checked).map((box) => box.value);
    return { kind: "restoration", inputs, params: { operations, auto_mask: f.auto_mask.checked } };
  },
  analysis(f) {
    return { kind: "analysis", inputs: { image: f.image.value },
             params: { similar: Number(f.similar.value), language: f.language.value } };
  },
  training(f) {
    const params = { target: f.target.value, model: f.model.value.trim(), dataset: f.dataset.value.trim(),
                     steps: Number(f.steps.value), resolution: Number(f.resolution.value),
                     sample_every: Number(f.sample_every.value), checkpoint_every: Number(f.checkpoint_every.value) };
    return { kind: "training", params };
  },
};

export function setUpJobForms(onSubmitted) {
  for (const tab of document.querySelectorAll("#kind-tabs button")) {
    tab.addEventListener("click", () => showKind(tab.dataset.kind));
  }
  for (const form of document.querySelectorAll("form.job-form")) {
    const problem = form.querySelector(".form-error");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      problem.hidden = true;
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        onSubmitted(await postJson("/v1/jobs", bodies[kindOf(form)](form.elements)));
      } catch (error) {
        problem.textContent = error.describe ? error.describe() : String(error);
        problem.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
  }
  const styleForm = $("#form-style_transfer");
  styleForm.addEventListener("change", () => {
    const painting = styleForm.elements.style_source.value === "painting";
    $("#style-choices").hidden = painting;
    $("#painting-choice").hidden = !painting;
  });
  const strength = styleForm.elements.strength;
  strength.addEventListener("input", () => { $("#strength-value").textContent = strength.value; });
  const training = $("#form-training");
  training.elements.target.addEventListener("change", () => trainingDefaults(training.elements));
  trainingDefaults(training.elements);
}

// Not form.dataset: a form's named controls shadow its properties, and the training form has
// a field named "dataset".
const kindOf = (form) => form.getAttribute("data-kind");

function showKind(kind) {
  for (const tab of document.querySelectorAll("#kind-tabs button")) {
    tab.setAttribute("aria-selected", String(tab.dataset.kind === kind));
  }
  for (const form of document.querySelectorAll("form.job-form")) form.hidden = kindOf(form) !== kind;
}

function trainingDefaults(f) {
  const target = f.target.value;
  f.model.value = DEFAULT_MODEL[target];
  f.steps.value = STEPS[target];
  f.resolution.replaceChildren(...RESOLUTIONS[target].map((side) => el("option", { value: side }, `${side} px`)));
  f.resolution.value = String(target === "gan" ? 32 : 128);
}

// What the forms offer depends on the key: admin keys may train; named styles and models.
export async function loadChoices(admin) {
  $("#kind-tabs button[data-kind=training]").hidden = !admin;
  showKind("style_transfer");
  await Promise.all([loadStyles(), loadModels()]);
}

async function loadStyles() {
  const { items } = await getJson("/v1/styles");
  $("#style-choices").replaceChildren(...items.map((style, i) => {
    const picture = el("img", { alt: "", class: "pending" });
    showThumbnail(picture, style.thumbnail_url, THUMBNAIL_TRIES);
    return el("label", { class: "style-choice", title: style.description },
      el("input", { type: "radio", name: "style", value: style.name, checked: i === 0 }),
      picture, el("span", {}, style.name));
  }));
}

// A worker renders the thumbnails shortly after it starts: until then they answer 404 not_ready.
function showThumbnail(picture, url, tries) {
  blobUrl(url).then((blob) => {
    picture.src = blob;
    picture.classList.remove("pending");
  }, (error) => {
    if (error.code === "not_ready" && tries > 1) setTimeout(() => showThumbnail(picture, url, tries - 1), 5000);
  });
}

async function loadModels() {
  const { items } = await getJson("/v1/models");
  const creation = $("#form-creation").elements;
  const trained = items.filter((m) => m.promoted_version !== null && (m.labels || []).length);
  creation.model.replaceChildren(...(trained.length
    ? trained.map((m) => el("option", { value: m.name }, `${m.name}@${m.promoted_version} · ${m.resolution} px`))
    : [el("option", { value: "" }, "abstract (not trained yet: an admin trains it)")]));
  const labels = () => {
    const model = trained.find((m) => m.name === creation.model.value);
    creation.label.replaceChildren(el("option", { value: "" }, "any (or from the prompt)"),
      ...(model ? model.labels : []).map((label) => el("option", { value: label }, label)));
  };
  creation.model.onchange = labels;
  labels();
}
