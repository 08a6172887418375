"""Art appreciation: a work's report (JSON) and its annotated picture."""

from __future__ import annotations

import json

from PIL import Image

from shared.job_params import AnalysisParams
from workers.analysis.annotate import annotate
from workers.analysis.model_labels import model_label_scores
from workers.analysis.pixels import MIN_SIDE
from workers.analysis.report import REPORT_SCHEMA, analyse, build_report
from workers.job_context import CancelCheck, InvalidJobInput, JobContext, ProgressFn
from workers.models import style_networks
from workers.pipelines.registry import Document, Output, OutputRole, PipelineResult, register_pipeline


@register_pipeline("analysis")
def appreciate(
    inputs: dict[str, Image.Image],
    params: AnalysisParams,
    progress: ProgressFn,
    check_cancel: CancelCheck,
    ctx: JobContext,
) -> PipelineResult:
    image = inputs["image"]
    if min(image.size) < MIN_SIDE:
        raise InvalidJobInput(f"the image is {image.width}x{image.height}; both sides need at least {MIN_SIDE} px",
                              code="image_too_small")
    progress(0.1, "measuring", f"{image.width}x{image.height}")
    analysis = analyse(image, ctx.device)
    check_cancel()
    models = model_label_scores(ctx.models, ctx.datasets, analysis.embedding) if ctx.models is not None else []
    check_cancel()
    similar = []
    if params.similar > 0 and ctx.works is not None:
        progress(0.6, "searching", "similar works")
        similar = [work.to_dict() for work in ctx.works.similar(image, analysis.embedding, params.similar)]
    check_cancel()
    progress(0.8, "writing", "report and annotated picture")
    report = build_report(analysis, language=params.language, similar=similar, models=models)
    annotated = annotate(image, report)
    data = json.dumps(report, ensure_ascii=False, indent=1).encode()
    return PipelineResult(
        outputs=[Document(data, "application/json", OutputRole.REPORT), Output(annotated, OutputRole.ANNOTATED)],
        metadata={"model": style_networks.model_facts(["arbitrary_predict"], ctx.device),
                  "analysis": {"schema": REPORT_SCHEMA, "language": params.language,
                               "similar_requested": params.similar, "similar_found": len(similar)}},
    )


def attach_reports(result: PipelineResult, ctx: JobContext, progress: ProgressFn,
                   check_cancel: CancelCheck) -> PipelineResult:
    """``result`` with an analysis report after its images, one per image result (``analyze: true``
    on a creation, style or restoration job); a restoration's mask and sample grids get none."""
    images = [(index, output) for index, output in enumerate(result.outputs)
              if isinstance(output, Output) and output.role in (OutputRole.RESULT, OutputRole.RESTORED)]
    reports: list[Output | Document] = []
    for done, (index, output) in enumerate(images):
        check_cancel()
        progress(0.85, "analysing", f"result {done + 1}/{len(images)}")
        analysis = analyse(output.image, ctx.device)
        models = model_label_scores(ctx.models, ctx.datasets, analysis.embedding) if ctx.models is not None else []
        report = build_report(analysis, models=models)
        reports.append(Document(json.dumps(report, ensure_ascii=False, indent=1).encode(), "application/json",
                                OutputRole.REPORT, describes=index))
    return PipelineResult(outputs=[*result.outputs, *reports], metadata=result.metadata)
