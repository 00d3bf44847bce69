"""Generation-time hooks for model frameworks, each importing its framework only when it is handed its objects.

* :class:`~aigclabel.hooks.text.WatermarkLogitsProcessor`: the green-list text watermark as a Hugging Face
  ``transformers`` logits processor (``model.generate(logits_processor=LogitsProcessorList([...]))``).
* :class:`~aigclabel.hooks.images.ImageLabeller`: labels (and optionally watermarks, signs and audits) every image a
  ``diffusers`` pipeline returns (``ImageLabeller(...).wrap(pipe)``).

Both are duck-typed: they follow the frameworks' calling conventions without subclassing their classes, so
importing :mod:`aigclabel.hooks` needs neither framework installed.
"""
