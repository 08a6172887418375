"""Art appreciation: plain functions that measure a work and write about it.

One module per measure: ``palette`` (dominant colours in CIELAB), ``colour_stats`` (brightness,
saturation, warmth, contrast, colourfulness, harmony), ``composition``, ``texture``, ``style``
(Magenta's style embedding and the 26 named styles in it); ``report`` puts them together,
``describe`` writes the English and Chinese words, ``annotate`` draws the annotated picture.
Nothing here knows of Celery, Redis or S3.
"""
