"""An nbgrader preprocessor the course adds to autograding (see notebooks/nbgrader_config.py).

nbgrader's own ``LimitOutput`` counts lines, so a submission printing one 10 MB line
keeps all of it in the graded notebook and its feedback. :class:`LimitOutputChars`
cuts every text output to ``max_chars`` characters.
"""
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer


class LimitOutputChars(NbGraderPreprocessor):
    """Truncate stream and ``text/plain`` outputs longer than ``max_chars``."""

    max_chars = Integer(20_000, help="characters kept per output").tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = self._cut(output.get("text", ""))
            elif "text/plain" in output.get("data", {}):
                output["data"]["text/plain"] = self._cut(output["data"]["text/plain"])
        return cell, resources

    def _cut(self, text):
        text = "".join(text) if isinstance(text, list) else text
        if len(text) <= self.max_chars:
            return text
        return text[: self.max_chars] + f"\n... [output cut: {len(text):,} characters in all]\n"
