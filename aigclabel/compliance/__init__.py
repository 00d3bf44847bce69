"""What a provider hands to its users and its regulator about labelling: the user-agreement clauses
(Measures Art. 8), the conditions of a label-free copy (Art. 9) and the labelling part of the
algorithm-filing materials (Art. 12), all generated from one provider configuration
(:class:`ProviderConfig`) and the audit store, in Simplified Chinese and English. The texts need no
extra; what reads or writes the audit store needs ``aigclabel[audit]``, imported when used.
"""

from .agreement import Clauses, clauses
from .export import record_label_free_export
from .filing import filing_materials
from .provider import ProviderConfig, load_provider

__all__ = [
    "Clauses",
    "ProviderConfig",
    "clauses",
    "filing_materials",
    "load_provider",
    "record_label_free_export",
]
