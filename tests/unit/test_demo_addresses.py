"""The demo's shipping addresses: each one the API and the domain take, spread over countries, some orders none."""

from __future__ import annotations

import random
import uuid
from collections import Counter

from infra.demo import addresses as demo
from write import addresses
from write.api import OrderIn


def test_the_demo_places_valid_addresses_over_many_countries_and_some_orders_without():
    rng = random.Random(7)
    made = [demo.shipping_address(rng, "Zoë Dupré") for _ in range(2_000)]
    given = [address for address in made if address is not None]
    assert 0.1 < 1 - len(given) / len(made) < 0.25, "about one order in six has no address"
    countries = Counter(address["country"] for address in given)
    assert len(countries) >= 10 and countries.most_common(1)[0][0] == "US"
    assert any("postal_code" not in address for address in given), "some countries have no postal codes"
    assert {len(address["street_lines"]) for address in given} == {1, 2, 3}
    for address in given:
        body = {
            "customer_id": str(uuid.uuid4()),
            "items": [{"product_id": str(uuid.uuid4()), "quantity": 1}],
            "shipping_address": address,
        }
        command = OrderIn.model_validate(body).shipping_address.command()
        assert addresses.check_address(command) == command, address


def test_the_body_field_is_empty_for_an_order_without_an_address():
    fields = [demo.body_field(random.Random(seed), "Ana Silva") for seed in range(50)]
    assert {} in fields and any(set(field) == {"shipping_address"} for field in fields)
