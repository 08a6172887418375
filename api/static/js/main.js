// The gallery page: log in with an API key, then upload, submit, watch and look.

import { forgetBlobs, getJson, key, request } from "./api.js";
import { $ } from "./dom.js";
import { loadChoices, setUpJobForms } from "./forms.js";
import { JobList } from "./jobs.js";
import { setUpProvenanceDialog } from "./provenance.js";
import { forgetUploads, setUpUploads } from "./uploads.js";

const RECENT_JOBS = 12;
const jobs = new JobList($("#jobs"), showError);

function showError(error) {
  const notice = $("#notice");
  notice.textContent = error.describe ? error.describe() : String(error.message || error);
  notice.hidden = false;
}

function hideError() {
  $("#notice").hidden = true;
}

async function start() {
  // Listing jobs checks the key too: a bad one answers 401 with the API's message.
  const recent = await getJson(`/v1/jobs?limit=${RECENT_JOBS}`);
  const admin = await request("/v1/schedules").then(() => true, () => false);
  hideError();
  $("#login").hidden = true;
  $("#session").hidden = false;
  $("#who").textContent = `key ${key.id()}${admin ? " · admin" : ""}`;
  $("#app").hidden = false;
  for (const job of recent.items) jobs.show(job, { first: false });
  await loadChoices(admin).catch(showError);
}

function logOut() {
  jobs.clear();
  key.clear();
  forgetBlobs();
  forgetUploads();
  $("#app").hidden = true;
  $("#session").hidden = true;
  $("#login").hidden = false;
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = $("#api-key");
  key.set(field.value.trim());
  try {
    await start();
    field.value = "";
  } catch (error) {
    logOut();
    showError(error);
  }
});
$("#logout").addEventListener("click", logOut);
$("#notice").addEventListener("click", hideError);

setUpProvenanceDialog();
setUpUploads(showError);
setUpJobForms((job) => {
  hideError();
  jobs.show(job);
});

if (key.get()) {
  start().catch((error) => {
    logOut();
    showError(error);
  });
}
