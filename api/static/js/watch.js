// Following a job until it ends: server-sent events from GET /v1/jobs/{id}/events where the API
// offers them (read with fetch, since EventSource cannot send the key), else polling
// GET /v1/jobs/{id} every half second.

import { ApiError, getJson, request } from "./api.js";

export const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const POLL_MS = 500;
// A browser holds about six connections to one host: streams must leave room for the rest.
const MAX_STREAMS = 3;
// Answers that say "later", not "never": wait and ask again.
const TRANSIENT = new Set([0, 429, 502, 503, 504]);

let streams = 0;

export async function watchJob(id, onJob, signal) {
  if (streams < MAX_STREAMS) {
    streams += 1;
    try {
      if (await followEvents(id, onJob, signal)) return;
    } finally {
      streams -= 1;
    }
  }
  while (!signal.aborted) {
    let job;
    try {
      job = await getJson(`/v1/jobs/${id}`, { signal });
    } catch (error) {
      if (!(error instanceof ApiError) || !TRANSIENT.has(error.status)) throw error;
      await sleep(Math.max(POLL_MS, (error.retryAfter || 2) * 1000), signal);
      continue;
    }
    onJob(job);
    if (TERMINAL.has(job.status)) return;
    await sleep(POLL_MS, signal);
  }
}

// True when the stream showed the job's end; false when there is no stream or it broke off.
async function followEvents(id, onJob, signal) {
  let response;
  try {
    response = await request(`/v1/jobs/${id}/events`, { headers: { Accept: "text/event-stream" }, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return false;
  }
  const type = response.headers.get("Content-Type") || "";
  if (response.status !== 200 || !type.startsWith("text/event-stream") || !response.body) {
    response.body?.cancel();
    return false;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let job = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += value;
      const blocks = buffer.split(/\r?\n\r?\n/);
      buffer = blocks.pop();
      for (const event of blocks.map(parse).filter(Boolean)) {
        job = await apply(event, job, id, signal);
        onJob(job);
        if (TERMINAL.has(job.status) && event.name === "end") {
          reader.cancel();
          return true;
        }
      }
    }
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return false;
  } finally {
    reader.cancel().catch(() => {});
  }
}

// The job after an event: "end" carries the final record; a progress update is merged into the
// job we hold; anything else (a transition, a new artifact) is read afresh.
async function apply(event, job, id, signal) {
  if (event.name === "end" && event.data?.id === id) return event.data;
  if (event.name === "progress" && job && event.data) {
    const { status, stage, fraction, message } = event.data;
    return { ...job, status: status || job.status, progress: { stage, fraction, message } };
  }
  return getJson(`/v1/jobs/${id}`, { signal });
}

// One event block: its name ("message" when unnamed) and its JSON data; null for comments.
function parse(block) {
  let name = "message";
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return null;
  try {
    return { name, data: JSON.parse(data.join("\n")) };
  } catch {
    return { name, data: null };
  }
}

export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const abort = () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", abort, { once: true });
  });
}
