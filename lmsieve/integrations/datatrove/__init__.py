"""lmsieve in datatrove, datatrove in lmsieve (``docs/datatrove.md``).

datatrove (Penedo, Kydlíček, Cappelli, Sasko, Wolf; Hugging Face, 2024,
https://github.com/huggingface/datatrove) is a library of small, composable processing steps. This
package is the only part of lmsieve that imports it.

* :class:`LmsieveScorer` -- a ``PipelineStep`` that scores documents with a *fitted* lmsieve
  selector (the same ``score_and_mask`` the API and the Beam jobs call) and writes the score and
  eligibility into ``doc.metadata``;
* :class:`LmsieveFilter` -- a ``BaseFilter`` that keeps documents at or above a score threshold;
  its drop reasons (``ineligible``, ``below_threshold``, ``nonfinite_score``) become datatrove
  stats;
* :func:`threshold_for_fraction` -- turns a keep-fraction into a threshold from a scored sample
  (a streaming filter sees one document at a time and cannot rank the whole pool);
* :class:`DecontaminationFilter` -- drops documents holding evaluation items (drop reason
  ``contaminated``, a stat; ``contaminated.<set>`` per evaluation set);
* :func:`run_prefilter` -- datatrove's own Parquet reader, Gopher/C4/FineWeb quality filters and
  MinHash dedup over lmsieve Parquet shards, writing shards ``lmsieve select`` reads.
"""
from lmsieve.integrations.datatrove.decontaminate import DecontaminationFilter
from lmsieve.integrations.datatrove.filter import LmsieveFilter
from lmsieve.integrations.datatrove.prefilter import QUALITY_FILTERS, PrefilterReport, run_prefilter
from lmsieve.integrations.datatrove.scorer import LmsieveScorer
from lmsieve.integrations.datatrove.threshold import threshold_for_fraction

__all__ = ["LmsieveScorer", "LmsieveFilter", "threshold_for_fraction", "run_prefilter", "PrefilterReport",
           "QUALITY_FILTERS", "DecontaminationFilter"]
