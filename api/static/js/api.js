// The API from the browser: the key (kept in sessionStorage, sent as a Bearer header), JSON
// calls that turn the API's one error shape into an ApiError, and images fetched with the key.

const KEY = "artforge.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  // The message, plus the fields the API names, e.g. "params.style: not one of ...".
  describe() {
    const fields = Object.entries(this.details.fields || {})
      .map(([name, problems]) => `${name}: ${[].concat(problems).flat().join(", ")}`);
    return fields.length ? `${this.message} (${fields.join("; ")})` : this.message;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
  // "af_<key id>_<secret>": the key id is safe to show.
  id: () => (sessionStorage.getItem(KEY) || "").split("_")[1] || "",
};

// The API names absolute URLs (its public URL); the page only talks to its own origin.
export function pathOf(url) {
  const parsed = new URL(url, location.href);
  return parsed.pathname + parsed.search;
}

export async function request(url, { method = "GET", json, body, headers = {}, signal, cache } = {}) {
  const init = { method, signal, cache, headers: { Authorization: `Bearer ${key.get()}`, ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(pathOf(url), init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "the API cannot be reached");
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response) {
  try {
    const { error } = await response.json();
    const problem = new ApiError(response.status, error.code, error.message, error.details || {});
    problem.retryAfter = Number(response.headers.get("Retry-After")) || 0;
    return problem;
  } catch {
    return new ApiError(response.status, "http_error", `${response.status} ${response.statusText}`);
  }
}

export async function getJson(url, options) {
  return (await request(url, options)).json();
}

export async function postJson(url, json) {
  return (await request(url, { method: "POST", json })).json();
}

// Images need the key, so <img src> cannot load them: fetch once, show as a blob: URL.
const blobs = new Map();

export function blobUrl(url) {
  const path = pathOf(url);
  if (!blobs.has(path)) {
    const loading = request(path).then(async (response) => URL.createObjectURL(await response.blob()));
    loading.catch(() => blobs.delete(path));
    blobs.set(path, loading);
  }
  return blobs.get(path);
}

export function forgetBlobs() {
  for (const loading of blobs.values()) loading.then(URL.revokeObjectURL, () => {});
  blobs.clear();
}
