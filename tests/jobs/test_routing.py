"""Admission on routes: the job stores its route's provider and resolution, the estimate is the route's, and an
option no route can honour is refused with nothing stored. (The jobs here are admitted, never run: running on
Runbase is the Runbase provider's test.)"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.catalog import Background, ModelName, ProviderName, Quality, Resolution, Routing
from bot.errors import InvalidRequestError
from bot.jobs.requests import RequestKind, job_route_request, request_from_job
from tests.jobs.conftest import ALICE, GUILD, Harness, HarnessFactory, assert_nothing_happened, make_request

BOTH = Routing.build([ProviderName.RUNWARE, ProviderName.RUNBASE])


async def test_gpt_image_2_is_admitted_on_runbase_at_its_resolutions_price(harnesses: HarnessFactory) -> None:
    harness = await harnesses.open(start=False, routing=BOTH)
    request = make_request(model=ModelName.GPT_IMAGE_2, count=2, resolution=Resolution.FOUR_K)
    admission = await harness.service.admit(request)
    assert admission.job_id is not None and admission.estimate == 2 * 120_000
    job = await harness.service.get_job(admission.job_id)
    assert job is not None
    assert (job.provider, job.resolution, job.estimate) == ("runbase", Resolution.FOUR_K, 240_000)
    budget = await harness.ledger.status(GUILD, ALICE, [])
    assert budget.reserved == 240_000
    assert harness.fake.requests == []  # nothing went to Runware

    # Reroll keeps the resolution; so the request is the same one, and a 2K one is another
    reroll = request_from_job(job, member_id=ALICE, role_ids=(), delivery=request.delivery, kind=RequestKind.REROLL)
    assert reroll.resolution is Resolution.FOUR_K
    assert request.fingerprint() != replace(request, resolution=Resolution.TWO_K).fingerprint()


async def test_without_a_chosen_resolution_the_configs_default_applies_to_gpt_image_2_only(
    harnesses: HarnessFactory,
) -> None:
    harness = await harnesses.open(start=False, routing=BOTH)
    admission = await harness.service.admit(make_request("a fox at dusk", model=ModelName.GPT_IMAGE_2))
    assert admission.job_id is not None and admission.estimate == 50_000
    job = await harness.service.get_job(admission.job_id)
    assert job is not None and (job.provider, job.resolution) == ("runbase", Resolution.ONE_K)

    admission = await harness.service.admit(make_request("a fox at noon", model=ModelName.GPT_IMAGE_1))
    assert admission.job_id is not None
    job = await harness.service.get_job(admission.job_id)
    assert job is not None and (job.provider, job.resolution) == ("runware", None)
    # the route a stored job would move to when its provider certainly did not take it (failover)
    takeover = BOTH.after(job.model, job.provider, job_route_request(job))
    assert takeover is not None and takeover.provider is ProviderName.RUNBASE
    assert [route.provider.value for route in harness.service.routing.routes(job.model)] == ["runware", "runbase"]


async def test_runbase_first_reroutes_what_runbase_cannot_honour_to_runware(harnesses: HarnessFactory) -> None:
    routing = Routing.build(
        [ProviderName.RUNWARE, ProviderName.RUNBASE],
        {ModelName.GPT_IMAGE_1_5: (ProviderName.RUNBASE, ProviderName.RUNWARE)},
    )
    harness = await harnesses.open(start=False, routing=routing)
    on_runbase = await harness.service.admit(
        make_request("a heron", model=ModelName.GPT_IMAGE_1_5, quality=Quality.HIGH)
    )
    on_runware = await harness.service.admit(
        make_request("a crane", model=ModelName.GPT_IMAGE_1_5, quality=Quality.LOW)
    )
    assert on_runbase.job_id is not None and on_runware.job_id is not None
    assert on_runbase.estimate == 160_000  # Runbase's fixed price for high
    first = await harness.service.get_job(on_runbase.job_id)
    second = await harness.service.get_job(on_runware.job_id)
    assert first is not None and first.provider == "runbase"
    assert second is not None and second.provider == "runware"


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        (
            {"model": ModelName.GPT_IMAGE_2, "background": Background.TRANSPARENT},
            "transparent background is not available for GPT Image 2; choose auto or opaque.",
        ),
        (
            {"model": ModelName.GPT_IMAGE_1, "resolution": Resolution.TWO_K},
            "2K resolution is not available for GPT Image 1; choose 1K.",
        ),
    ],
)
async def test_an_option_no_route_honours_is_refused_before_anything_happens(
    harnesses: HarnessFactory, changes: dict[str, object], sentence: str
) -> None:
    harness = await harnesses.open(start=False, routing=BOTH)
    with pytest.raises(InvalidRequestError) as caught:
        await harness.service.admit(make_request(**changes))
    assert str(caught.value) == sentence
    await assert_nothing_happened(harness)


async def test_with_runware_alone_gpt_image_2_is_not_available(harness: Harness) -> None:
    with pytest.raises(InvalidRequestError, match="GPT Image 2 is not available here"):
        await harness.service.admit(make_request(model=ModelName.GPT_IMAGE_2))
    await assert_nothing_happened(harness)
