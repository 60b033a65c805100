from core.pagination import KeysetPage, keyset_paginate
from curation.models import Approval


def approval_get(*, approval_id: int) -> Approval:
    """Raises ``Approval.DoesNotExist``."""
    return Approval.objects.select_related(
        "dataset", "cascade_run", "created_by", "revoked_by"
    ).get(pk=approval_id)


def approval_list_page(
    *, dataset_id: int | None = None, after: int | None = None, before: int | None = None
) -> KeysetPage:
    """Approvals newest first (keyset on id; per dataset on the (dataset, -id) index)."""
    approvals = Approval.objects.select_related("dataset", "cascade_run", "created_by")
    if dataset_id is not None:
        approvals = approvals.filter(dataset_id=dataset_id)
    return keyset_paginate(approvals, key="id", after=after, before=before, descending=True)
