"""Likeness protection: consent before a face or voice is edited, a registry platforms match uploads against.

Why: the courts hold that distorting another person's likeness with AI infringes (Civil Code Art. 1019; Art.
1023 extends it to the voice). The Deep Synthesis Provisions (2023) Art. 14 require a provider that edits faces
or voices to have the person notified and to obtain separate consent; Art. 17 asks for conspicuous labels on
face generation, swap and manipulation and on synthetic or imitated voices. Faces and voices are sensitive
personal information (PIPL Art. 28-29), and the Facial Recognition Measures (2025) apply to any face registry:
separate consent, minimal storage, an impact assessment. So this package stores embeddings, never photos or
recordings, encrypted at rest, and every consent decision is signed and hash-chained.

One module per job:

* ``face``: :class:`~aigclabel.likeness.face.FaceEncoder` (dlib's HOG detector, 5-point landmarks and 128-d
  encoder);
* ``voice``: :class:`~aigclabel.likeness.voice.VoiceEncoder` (resemblyzer's speaker-encoder weights on numpy);
* ``ledger``: the consent ledger (signed, hash-chained entries in the audit database);
* ``registry``: enrolled people and their encrypted templates;
* ``gate``: the generation-time gate (allow / consent-required / refuse);
* ``scan``: the platform scan and its review queue;
* ``evidence``: the evidence package (a signed ZIP) and its verification.

The shared vocabulary (:class:`Likeness`, :class:`Encoder`) lives in :mod:`aigclabel.likeness.types`; the
models need the ``[likeness]`` extra.
"""
