"""The web app (``m3ddm app``): a Gradio Blocks UI over the pipeline.

``handlers`` (form values -> options, preview, one job) and ``preview`` need no gradio; ``ui`` imports gradio when
the app is built, so importing ``m3ddm.app`` never does (gradio comes with the ``app`` extra).
"""
