"""A job's side of S3 and Redis while it runs: its inputs read, its pipeline's context (artifact
workspace, datasets), and its results marked, recorded and written."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from PIL import Image

from shared.dataset_store import DatasetRecord, dataset_prefix
from shared.images import decode_image
from shared.jobs import Job
from shared.objects import ObjectNotFound
from shared.works_index import WorkRef
from workers.job_context import InvalidJobInput, JobContext
from workers.pipelines.registry import PipelineResult
from workers.provenance.recording import ResultRecorder
from workers.runtime import Runtime
from workers.works_indexing import IndexedWorks


def load_inputs(rt: Runtime, job: Job) -> dict[str, Image.Image]:
    """The job's input images by role. ``job`` + ``result`` (an analysis of one of the tenant's own
    results) is the ``image`` input."""
    rt.jobs.set_progress(job.id, 0.0, "loading inputs")
    images = {}
    roles = dict(job.inputs)
    if "job" in roles:
        images["image"] = _result_image(rt, job.tenant, str(roles.pop("job")), int(roles.pop("result", 0)))
    for role, upload_id in roles.items():
        upload = rt.uploads.get_for_tenant(upload_id, job.tenant)
        if upload is None:
            raise InvalidJobInput(f"input {role!r}: upload {upload_id} no longer exists", code="input_missing")
        data = rt.objects.get_bytes(rt.settings.bucket_uploads, upload.key)
        images[role] = decode_image(data, rt.settings.max_image_pixels).image
    return images


def _result_image(rt: Runtime, tenant: str, job_id: str, index: int) -> Image.Image:
    source = rt.jobs.get_for_tenant(job_id, tenant)
    result = next((r for r in source.results if r.get("index") == index), None) if source is not None else None
    if result is None:
        raise InvalidJobInput(f"input: result {index} of job {job_id} no longer exists", code="input_missing")
    try:
        data = rt.objects.get_bytes(rt.settings.bucket_results, result["key"])
    except ObjectNotFound:
        raise InvalidJobInput(f"input: result {index} of job {job_id} is no longer stored",
                              code="input_missing") from None
    return decode_image(data, rt.settings.max_image_pixels).image


def analysed_work(job: Job) -> WorkRef | None:
    """The work a job analyses, as the works index names it."""
    if "job" in job.inputs:
        return WorkRef("result", str(job.inputs["job"]), int(job.inputs.get("result", 0)))
    if "image" in job.inputs:
        return WorkRef("upload", str(job.inputs["image"]))
    return None


def job_context(rt: Runtime, job: Job) -> JobContext:
    works = IndexedWorks(rt, job.tenant, analysed_work(job)) if job.kind == "analysis" else None
    return JobContext(job_id=job.id, device=rt.settings.device, workspace=S3Workspace(rt, job),
                      models=rt.registry.for_tenant(job.tenant), datasets=S3Datasets(rt, job.tenant), works=works)


class S3Workspace:
    """A job's artifacts under ``{tenant}/{job_id}/artifacts/`` in the results bucket;
    listed ones (sample grids) also appear on the job record."""

    def __init__(self, rt: Runtime, job: Job):
        self.rt, self.job = rt, job

    def _key(self, name: str) -> str:
        return f"{self.job.tenant}/{self.job.id}/artifacts/{name}"

    def save(self, name: str, data: bytes, content_type: str, listed: bool = True) -> None:
        self.rt.objects.put_bytes(self.rt.settings.bucket_results, self._key(name), data, content_type)
        if listed:
            self.rt.jobs.record_artifact(self.job.id, {"name": name, "key": self._key(name),
                                                       "content_type": content_type, "created_at": time.time()})

    def load(self, name: str) -> bytes | None:
        try:
            return self.rt.objects.get_bytes(self.rt.settings.bucket_results, self._key(name))
        except ObjectNotFound:
            return None


class S3Datasets:
    """The tenant's datasets as the training pipeline reads them.

    A dataset's record names its newest manifest (``manifests/v{n}.json``). The record is read
    once per job attempt and kept, so manifest, manifest hash and images all belong to the same
    version even when images are added to the dataset while the job runs."""

    def __init__(self, rt: Runtime, tenant: str):
        self.rt, self.tenant = rt, tenant
        self._records: dict[str, DatasetRecord] = {}

    def _record(self, dataset_id: str) -> DatasetRecord:
        if dataset_id not in self._records:
            record = self.rt.datasets.get_for_tenant(dataset_id, self.tenant)
            if record is None:
                raise InvalidJobInput(f"dataset {dataset_id} no longer exists", code="unknown_dataset")
            self._records[dataset_id] = record
        return self._records[dataset_id]

    def manifest(self, dataset_id: str) -> dict[str, Any]:
        record = self._record(dataset_id)
        return dict(json.loads(self.rt.objects.get_bytes(self.rt.settings.bucket_datasets, record.manifest_key)))

    def manifest_sha256(self, dataset_id: str) -> str:
        return self._record(dataset_id).manifest_sha256

    @property
    def debian_images_manifest(self) -> Path:
        """Where this worker has the built-in debian-images corpus's manifest."""
        return self.rt.datasets.debian_images_manifest

    def image(self, dataset_id: str, key: str) -> bytes:
        return self.rt.objects.get_bytes(self.rt.settings.bucket_datasets,
                                         dataset_prefix(self.tenant, dataset_id) + key)


def store_results(rt: Runtime, job: Job, result: PipelineResult,
                  inputs: dict[str, Image.Image] | None = None) -> list[dict[str, Any]]:
    """Mark every image, seal its provenance record onto the tenant's chain, and write image,
    C2PA sidecar and record under deterministic keys, several at a time; only the chain step
    is serialised (``workers.provenance.recording``)."""
    rt.jobs.set_progress(job.id, 0.9, "storing", "marking and signing")
    if not result.outputs:
        return []
    recorder = ResultRecorder(rt, job, result, inputs or {})
    prepared = recorder.prepare_all(result.outputs)
    return recorder.store_all(prepared, recorder.seal(prepared))
