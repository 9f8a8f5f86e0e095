from . import amos_rtd, sentence_prediction_by_length  # noqa: F401
