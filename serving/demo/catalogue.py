"""A deterministic, readable demo catalogue.

Titles and descriptions are composed from per-category word lists, so the content
encoder (which embeds ``Item.text()``) places items of one category close together:
the vocabulary, not just the category label, carries the signal.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from serving.core.domain import Item


@dataclass(frozen=True)
class _CategorySpec:
    """How to write the items of one category."""

    name: str
    titles: tuple[str, ...]
    """Title templates; ``{slot}`` names refer to ``words``."""
    descriptions: tuple[str, ...]
    """First sentences (templates); a second sentence is drawn from ``extras``."""
    extras: tuple[str, ...]
    words: dict[str, tuple[str, ...]]
    tags: tuple[str, ...]
    price: tuple[float, float]
    related: tuple[str, ...]
    """Categories a second label may come from (a hiking guide is also travel)."""


def _w(text: str) -> tuple[str, ...]:
    return tuple(word.strip() for word in text.split(",") if word.strip())


_SPECS: tuple[_CategorySpec, ...] = (
    _CategorySpec(
        name="sci-fi-novels",
        titles=(
            "The {adj} {noun}",
            "{noun} of {place}",
            "The Last {role} of {place}",
            "{adj} {noun}: A Novel",
            "Beyond the {adj} {noun}",
        ),
        descriptions=(
            "A {tone} science fiction novel about a {role_l} who {plot}.",
            "On a starship bound for {place}, a {role_l} {plot}.",
            "A space opera in which a lone {role_l} {plot}.",
        ),
        extras=(
            "Hard science, alien contact and a twist you will not see coming.",
            "The first book of an interstellar saga.",
            "Faster-than-light travel, rogue AIs and the ethics of terraforming.",
            "A galactic adventure for readers of classic space fiction.",
        ),
        words={
            "adj": _w(
                "Silent, Crimson, Hollow, Infinite, Shattered, Distant, Quantum, Frozen, "
                "Forgotten, Burning, Orbital, Dark, Iron, Binary, Eternal"
            ),
            "noun": _w(
                "Nebula, Star, Horizon, Colony, Singularity, Signal, Orbit, Empire, Void, "
                "Machine, Armada, Eclipse, Comet, Archive, Gate"
            ),
            "place": _w(
                "Andromeda, Titan, Kepler-9, the Outer Rim, Europa, Proxima, Mars, Vega, "
                "the Dyson Ring, Callisto, Sirius, the Kuiper Belt"
            ),
            "role": _w("Starpilot, Android, Navigator, Empress, Engineer, Cartographer, Exile"),
            "role_l": _w(
                "starship captain, rogue android, exiled navigator, xenobiologist, "
                "orbital engineer, colony doctor"
            ),
            "plot": _w(
                "uncovers an alien signal, must stop a war between colonies, "
                "wakes from cryosleep centuries too late, races a dying sun, "
                "discovers the truth about a derelict warship"
            ),
            "tone": _w("gripping, cerebral, sweeping, haunting, fast-paced"),
        },
        tags=_w("space-opera, aliens, ai, time-travel, dystopia, first-contact, cyberpunk, robots"),
        price=(7.99, 24.99),
        related=("mystery-novels", "documentaries"),
    ),
    _CategorySpec(
        name="mystery-novels",
        titles=(
            "Murder at {place}",
            "The {adj} {object}",
            "A {adj} Death in {place}",
            "The {object} Affair",
            "Inspector {surname} and the {adj} {object}",
        ),
        descriptions=(
            "A {tone} whodunit in which Inspector {surname} investigates {crime} in {place}.",
            "When {crime} shakes {place}, a retired detective must find the killer.",
            "A {tone} crime novel of secrets, suspects and {crime}.",
        ),
        extras=(
            "Every guest has a motive and an alibi.",
            "A locked-room puzzle with a final twist.",
            "Perfect for fans of classic detective fiction.",
            "Clues, red herrings and a gripping police procedural.",
        ),
        words={
            "adj": _w(
                "Quiet, Poisoned, Vanishing, Crooked, Midnight, Missing, Silent, Velvet, "
                "Bloody, Secret, Locked, Stolen"
            ),
            "object": _w(
                "Locket, Ledger, Dagger, Key, Letter, Violin, Portrait, Teacup, Will, "
                "Diamond, Hourglass, Lantern"
            ),
            "place": _w(
                "Blackwood Manor, the Harbour, Ravenscourt, the Orient Express, Kingsbridge, "
                "the Old Vicarage, Marlowe Hall, Saint Ives, the Opera House"
            ),
            "surname": _w("Hale, Moreau, Whitlock, Ashford, Lindqvist, Carver, Okafor, Brandt"),
            "crime": _w(
                "a poisoning at a dinner party, a vanished heiress, a murder in a locked study, "
                "a stolen diamond, a body found in the river"
            ),
            "tone": _w("cosy, atmospheric, twisty, chilling, clever"),
        },
        tags=_w("whodunit, detective, cosy-mystery, thriller, police-procedural, noir, suspense"),
        price=(6.99, 19.99),
        related=("sci-fi-novels", "travel-guides"),
    ),
    _CategorySpec(
        name="cooking",
        titles=(
            "{adj} {dish} Cookbook",
            "The {cuisine} Kitchen",
            "{number} {adj} {dish} Recipes",
            "Cooking with {ingredient}",
            "{cuisine} {dish} at Home",
        ),
        descriptions=(
            "A cookbook of {adj_lower} {cuisine} recipes built around {ingredient_lower}.",
            "Step-by-step {cuisine} recipes for {dish_l}, from weeknight dinners to feasts.",
            "Home cooking with {ingredient_lower}: {number} recipes, tested in a real kitchen.",
        ),
        extras=(
            "Includes a pantry guide and prep-ahead tips.",
            "Vegetarian options for every chapter.",
            "Photographed dishes, simple techniques, big flavour.",
            "Spices, sauces and slow-cooked comfort food.",
        ),
        words={
            "adj": _w(
                "Smoky, Spicy, Rustic, Easy, Vegan, Slow-Cooked, Seasonal, Crispy, Hearty, "
                "Fresh, Weeknight, Homemade"
            ),
            "dish": _w(
                "Chipotle Chili, Pasta, Curry, Noodle, Dumpling, Taco, Soup, Bread, Salad, "
                "Barbecue, Stew, Pastry"
            ),
            "dish_l": _w(
                "ramen and dumplings, sourdough bread, spicy curries, handmade pasta, "
                "tacos and salsas, hearty stews"
            ),
            "cuisine": _w(
                "Mexican, Italian, Thai, Japanese, Indian, Moroccan, Korean, Greek, "
                "Vietnamese, Lebanese, Peruvian"
            ),
            "ingredient": _w(
                "Garlic, Miso, Lemons, Chickpeas, Mushrooms, Saffron, Tomatoes, Chillies, "
                "Olive Oil, Ginger"
            ),
            "number": _w("30, 50, 75, 100, 101, 120"),
        },
        tags=_w("recipes, vegetarian, baking, quick-meals, spices, meal-prep, comfort-food"),
        price=(14.99, 39.99),
        related=("gardening", "travel-guides"),
    ),
    _CategorySpec(
        name="jazz-albums",
        titles=(
            "{adj} {noun}",
            "{noun} in {key}",
            "Live at the {venue}",
            "{artist}: {adj} {noun}",
            "{adj} {noun} Sessions",
        ),
        descriptions=(
            "A {style} jazz album recorded {where}, led by {artist} on {instrument}.",
            "{artist} and quartet play {style} jazz standards and originals.",
            "A {style} record of {instrument} solos, brushed drums and walking bass.",
        ),
        extras=(
            "Remastered from the original analog tapes.",
            "Features an extended improvisation on the title track.",
            "Swing, bebop and late-night ballads.",
            "A trio recording with a warm, intimate sound.",
        ),
        words={
            "adj": _w(
                "Blue, Midnight, Smoky, Velvet, Late, Moonlit, Lazy, Electric, Golden, "
                "Rainy, Cool, Harlem"
            ),
            "noun": _w(
                "Train, Serenade, Groove, Avenue, Lullaby, Ballad, Swing, Reverie, Blues, "
                "Suite, Standards, Nocturne"
            ),
            "key": _w("B Flat, E Minor, F Major, D Minor, A Flat, G"),
            "venue": _w(
                "Village Vanguard, Blue Note, Birdland, Montreux, Ronnie Scott's, Half Note"
            ),
            "artist": _w(
                "The Nia Cole Trio, Marcus Bell, Ella Jansen, The Harbor Quartet, Theo Lark, "
                "June Okoro"
            ),
            "style": _w("bebop, cool, modal, hard bop, swing, smooth, fusion"),
            "where": _w(
                "live in a smoky club, in one night in 1962, in a Brooklyn studio, at a festival"
            ),
            "instrument": _w("saxophone, trumpet, piano, double bass, vibraphone, guitar"),
        },
        tags=_w("bebop, saxophone, piano-trio, live-recording, vinyl, swing, modal, big-band"),
        price=(9.99, 29.99),
        related=("classical-music",),
    ),
    _CategorySpec(
        name="hiking-gear",
        titles=(
            "{brand} {adj} {product}",
            "{adj} {product} {size}",
            "{brand} Trail {product}",
            "{adj} {material} {product}",
        ),
        descriptions=(
            "A {adj_lower} {product_lower} for {use}, made from {material_l}.",
            "{brand}'s {product_lower} is built for {use} and weighs just {weight} grams.",
            "A trail-tested {product_lower} for {use}.",
        ),
        extras=(
            "Waterproof seams and a lifetime warranty.",
            "Packs down small for backpacking and thru-hiking.",
            "Breathable, durable and ready for alpine weather.",
            "Designed with mountain guides for long days on the trail.",
        ),
        words={
            "brand": _w("Summit, Ridgeline, Alpenglow, Trailhead, Northwall, Cairn, Switchback"),
            "adj": _w(
                "Ultralight, Waterproof, Insulated, Alpine, Rugged, Packable, Trekking, "
                "Windproof, Thermal"
            ),
            "product": _w(
                "Backpack, Tent, Sleeping Bag, Hiking Boots, Rain Jacket, Trekking Poles, "
                "Headlamp, Water Filter, Fleece, Gaiters, Stove"
            ),
            "size": _w("35L, 50L, 2P, 3-Season, XL, 65L, Mid"),
            "material": _w("Gore-Tex, Merino, Ripstop, Down, Titanium, Carbon"),
            "material_l": _w(
                "ripstop nylon, recycled polyester, merino wool, goose down, aluminium"
            ),
            "use": _w(
                "multi-day treks, alpine scrambles, wet-weather hikes, thru-hiking, "
                "winter camping, day hikes"
            ),
            "weight": _w("340, 480, 620, 890, 1150, 1400"),
        },
        tags=_w("backpacking, camping, waterproof, ultralight, trekking, outdoor, mountaineering"),
        price=(19.99, 349.0),
        related=("travel-guides", "fitness"),
    ),
    _CategorySpec(
        name="board-games",
        titles=(
            "{adj} {noun}",
            "{noun} of {place}",
            "The {adj} {noun}: A Board Game",
            "{noun} Tycoon",
            "Settlers of {place}",
        ),
        descriptions=(
            "A {style} board game for {players} players about {theme}.",
            "Build, trade and outwit your friends in this {style} game of {theme}.",
            "A {style} tabletop game: {theme}, dice and a clever card draft.",
        ),
        extras=(
            "Plays in about {minutes} minutes, with a solo mode.",
            "Great for family game night.",
            "Includes wooden meeples, a modular board and two expansions.",
            "Easy to learn, hard to master.",
        ),
        words={
            "adj": _w(
                "Royal, Lost, Tiny, Sunken, Clever, Great, Wild, Hidden, Golden, Ancient, "
                "Rival, Crowded"
            ),
            "noun": _w(
                "Railways, Kingdoms, Castles, Harbours, Dragons, Orchards, Islands, Guilds, "
                "Caravans, Lighthouses, Vineyards, Bazaars"
            ),
            "place": _w(
                "Catan Bay, the Nile, Avalon, Samarkand, the Alps, Venice, Atlantis, Kyoto"
            ),
            "style": _w("cooperative, strategy, deck-building, worker-placement, party, dice"),
            "players": _w("2 to 4, 1 to 5, 3 to 6, 2, 4 to 8"),
            "theme": _w(
                "building railways across a continent, trading spices along the Silk Road, "
                "defending a castle from dragons, running a vineyard, exploring sunken islands"
            ),
            "minutes": _w("20, 30, 45, 60, 90, 120"),
        },
        tags=_w("strategy, cooperative, family, party-game, deck-building, worker-placement, dice"),
        price=(14.99, 79.99),
        related=("documentaries",),
    ),
    _CategorySpec(
        name="documentaries",
        titles=(
            "The {adj} {subject}",
            "Inside the {subject}",
            "{subject}: A Documentary",
            "Secrets of the {subject}",
            "Chasing the {adj} {subject}",
        ),
        descriptions=(
            "A {tone} documentary about the {subject_lower}, filmed over {years} years.",
            "Award-winning filmmakers explore the {subject_lower} and {topic}.",
            "A {tone} documentary series exploring {topic}, with rare archive footage.",
        ),
        extras=(
            "Narrated by a renowned naturalist.",
            "Filmed on six continents in 4K.",
            "Interviews with scientists, historians and eyewitnesses.",
            "An investigative look at a story that made headlines.",
        ),
        words={
            "adj": _w("Hidden, Vanishing, Last, Deep, Wild, Great, Untold, Frozen, Secret, Living"),
            "subject": _w(
                "Ocean, Rainforest, Arctic, Coral Reef, Brain, Empire, Pharaohs, Migration, "
                "Volcano, Cosmos, Honeybees, Silk Road"
            ),
            "topic": _w(
                "the wildlife of the deep ocean, climate change in the Arctic, the rise and "
                "fall of ancient Rome, the science of sleep, the people behind a famous heist, "
                "the great animal migrations"
            ),
            "tone": _w("stunning, investigative, moving, eye-opening, award-winning"),
            "years": _w("two, five, ten, three"),
        },
        tags=_w("nature, history, science, true-crime, wildlife, biography, investigative"),
        price=(3.99, 19.99),
        related=("sci-fi-novels", "travel-guides"),
    ),
    _CategorySpec(
        name="gardening",
        titles=(
            "The {adj} Garden",
            "Growing {plant}",
            "{adj} {plant} for Beginners",
            "The {place} Gardener",
            "{adj} Gardening with {plant}",
        ),
        descriptions=(
            "A practical gardening guide to growing {plant_lower} in {place_l}.",
            "Plan, plant and harvest {plant_lower}: a {adj_l} guide for every season.",
            "How to build healthy soil, compost and grow {plant_lower}.",
        ),
        extras=(
            "Month-by-month planting calendar included.",
            "Organic methods, raised beds and companion planting.",
            "For balconies, allotments and backyard vegetable patches.",
            "Pruning, propagation and pest control without chemicals.",
        ),
        words={
            "adj": _w(
                "Organic, Small-Space, Wild, Kitchen, Cottage, Container, Shade, "
                "Year-Round, No-Dig, Edible"
            ),
            "plant": _w(
                "Tomatoes, Roses, Herbs, Succulents, Vegetables, Orchids, Fruit Trees, "
                "Wildflowers, Bonsai, Houseplants, Perennials"
            ),
            "place": _w("Balcony, Urban, Backyard, Greenhouse, Allotment, Windowsill"),
            "place_l": _w(
                "a small balcony, raised beds, a greenhouse, clay soil, a shady backyard"
            ),
            "adj_l": _w("practical, organic, beginner-friendly, seasonal"),
        },
        tags=_w("vegetables, herbs, organic, composting, houseplants, flowers, permaculture"),
        price=(9.99, 34.99),
        related=("cooking",),
    ),
    _CategorySpec(
        name="fitness",
        titles=(
            "{brand} {adj} {product}",
            "{adj} {product}",
            "{brand} {product} {model}",
        ),
        descriptions=(
            "A {adj_lower} {product_lower} for {activity}.",
            "{brand}'s {product_lower} helps you train for {activity} at home or in the gym.",
            "Built for {activity}: {product_lower} with {feature}.",
        ),
        extras=(
            "Tracks heart rate, reps and recovery.",
            "Designed with physiotherapists for safe strength training.",
            "Great for HIIT, yoga and marathon training.",
            "Compact enough for a home gym.",
        ),
        words={
            "brand": _w("Pulse, Stride, IronCore, Flexa, Tempo, Kinetic, Apex"),
            "adj": _w(
                "Adjustable, Cushioned, Carbon, Smart, Foldable, Lightweight, Pro, Grip, Recovery"
            ),
            "product": _w(
                "Running Shoes, Dumbbells, Yoga Mat, Kettlebell, Resistance Bands, "
                "Foam Roller, Jump Rope, Fitness Tracker, Pull-Up Bar, Rowing Machine"
            ),
            "model": _w("2, 3, X, Max, Elite, Air, 500"),
            "activity": _w(
                "marathon training, strength workouts, yoga and pilates, HIIT sessions, "
                "trail running, mobility and recovery"
            ),
            "feature": _w(
                "responsive foam cushioning, a non-slip surface, quick-lock plates, "
                "GPS and heart-rate tracking"
            ),
        },
        tags=_w("running, strength, yoga, cardio, home-gym, recovery, marathon"),
        price=(12.99, 499.0),
        related=("hiking-gear",),
    ),
    _CategorySpec(
        name="classical-music",
        titles=(
            "{composer}: {work} No. {number}",
            "{composer}: {adj} {works}",
            "The {adj} {work}",
            "{composer} {works}, Vol. {number}",
        ),
        descriptions=(
            "{composer}'s {work_l}s performed by {ensemble}.",
            "A {adj_l} recording of {composer} by {ensemble}, conducted with rare clarity.",
            "{ensemble} plays {composer}: {work_l}s for {instrument}.",
        ),
        extras=(
            "Recorded in a cathedral with a warm, spacious acoustic.",
            "A landmark performance of the Romantic repertoire.",
            "Baroque ornament, period instruments and crisp tempi.",
            "Includes extensive liner notes on the orchestral score.",
        ),
        words={
            "composer": _w(
                "Bach, Mozart, Beethoven, Chopin, Brahms, Debussy, Vivaldi, Schubert, "
                "Tchaikovsky, Haydn, Ravel, Mahler"
            ),
            "work": _w("Symphony, Concerto, Sonata, Nocturne, Prelude, Requiem, Suite, Etude"),
            "works": _w("Symphonies, Concertos, Sonatas, Nocturnes, Preludes, Suites, Etudes"),
            "work_l": _w(
                "chamber work, piano concerto, violin sonata, string quartet, cello suite, prelude"
            ),
            "adj": _w("Complete, Late, Romantic, Early, Baroque, Celebrated, Lost"),
            "number": _w("1, 2, 3, 4, 5, 6, 7, 8, 9"),
            "ensemble": _w(
                "the Vienna Philharmonic, a young string quartet, the Berlin Chamber "
                "Orchestra, a celebrated pianist, the London Symphony Orchestra"
            ),
            "instrument": _w("solo piano, violin and orchestra, cello, harpsichord"),
            "adj_l": _w("luminous, definitive, intimate, dramatic"),
        },
        tags=_w("orchestra, piano, baroque, romantic, symphony, chamber-music, opera"),
        price=(8.99, 34.99),
        related=("jazz-albums",),
    ),
    _CategorySpec(
        name="travel-guides",
        titles=(
            "{adj} {place}",
            "{place} on a Budget",
            "The {adj} Guide to {place}",
            "{number} Days in {place}",
            "Walking {place}",
        ),
        descriptions=(
            "A {adj_l} travel guide to {place} with itineraries, maps and {focus}.",
            "Where to stay, eat and explore in {place}: {focus}.",
            "Plan a trip to {place} with {focus} and local tips.",
        ),
        extras=(
            "Includes day trips, neighbourhood maps and a phrasebook.",
            "Backpacker hostels to boutique hotels.",
            "Hidden beaches, mountain villages and night markets.",
            "Updated for this year's travel season.",
        ),
        words={
            "adj": _w("Essential, Hidden, Pocket, Ultimate, Slow, Rough, Local, Coastal"),
            "place": _w(
                "Lisbon, Japan, Patagonia, Iceland, Morocco, Vietnam, the Scottish Highlands, "
                "Peru, Sicily, New Zealand, Istanbul, Mexico City"
            ),
            "number": _w("3, 5, 7, 10, 14, 21"),
            "focus": _w(
                "street food and markets, hiking routes, museums and architecture, "
                "road trips, island hopping"
            ),
            "adj_l": _w("practical, budget-friendly, richly illustrated, pocket-size"),
        },
        tags=_w("itinerary, backpacking, city-break, road-trip, food-travel, maps, budget"),
        price=(9.99, 29.99),
        related=("hiking-gear", "cooking", "documentaries"),
    ),
    _CategorySpec(
        name="photography",
        titles=(
            "{brand} {adj} {product}",
            "{brand} {product} {model}",
            "{adj} {product} Kit",
        ),
        descriptions=(
            "A {adj_lower} {product_lower} for {use}.",
            "{brand}'s {product_lower} delivers {feature} for {use}.",
            "Shoot {use} with this {adj_l} {product_lower}.",
        ),
        extras=(
            "Weather-sealed body and fast autofocus.",
            "Pairs with mirrorless and DSLR cameras.",
            "Sharp edge to edge, with beautiful bokeh.",
            "Ideal for photographers who travel light.",
        ),
        words={
            "brand": _w("Lumen, Aperture, Fieldview, Prism, Shutterline, Optica"),
            "adj": _w(
                "Mirrorless, Full-Frame, Wide-Angle, Telephoto, Compact, Macro, Carbon, "
                "Prime, Vintage"
            ),
            "product": _w(
                "Camera, Lens, Tripod, Camera Bag, Flash, Filter Set, Light Meter, Gimbal, "
                "Film Camera"
            ),
            "model": _w("Mk II, 50mm f/1.8, 24-70mm, 85mm, X100, R7, 16mm"),
            "use": _w(
                "portrait photography, landscape photography, street photography, "
                "wildlife photography, astrophotography"
            ),
            "feature": _w(
                "crisp low-light performance, fast autofocus, image stabilisation, a silent shutter"
            ),
            "adj_l": _w("lightweight, weather-sealed, fast, compact, professional"),
        },
        tags=_w("camera, lens, tripod, mirrorless, landscape, portrait, film-photography"),
        price=(24.99, 1999.0),
        related=("travel-guides", "hiking-gear"),
    ),
)

CATEGORIES: tuple[str, ...] = tuple(spec.name for spec in _SPECS)
"""The demo categories, in a fixed order."""

_SPECS_BY_NAME = {spec.name: spec for spec in _SPECS}

# Share of items published within the last two days: enough for the freshness
# component of the blend to visibly matter in the demo.
_RECENT_SHARE = 0.08
_SECOND_CATEGORY_SHARE = 0.15


def _draw(words: dict[str, tuple[str, ...]], rng: random.Random) -> dict[str, str]:
    """One value per slot (and its ``<slot>_lower`` form), shared by title and description
    so that both talk about the same thing."""
    values = {slot: rng.choice(choices) for slot, choices in words.items()}
    values.update({f"{slot}_lower": value.lower() for slot, value in list(values.items())})
    return values


_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def _fill(template: str, values: dict[str, str]) -> str:
    # Slots are filled blindly, so "a" before a vowel is fixed afterwards.
    return _ARTICLE.sub(lambda m: m.group(1) + "n ", template.format(**values))


def _sentence(text: str) -> str:
    text = text.strip()
    return text[0].upper() + text[1:] if text else text


def _make_title(
    spec: _CategorySpec, rng: random.Random, taken: set[str]
) -> tuple[str, dict[str, str]]:
    for _ in range(20):
        values = _draw(spec.words, rng)
        title = _fill(rng.choice(spec.titles), values)
        if title not in taken:
            return title, values
    # The combinations of one category are finite; a collision becomes a new edition.
    edition = 2
    while f"{title} ({_ordinal(edition)} Edition)" in taken:
        edition += 1
    return f"{title} ({_ordinal(edition)} Edition)", values


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _published_at(rng: random.Random, now: datetime) -> datetime:
    if rng.random() < _RECENT_SHARE:
        age = timedelta(hours=rng.uniform(0.0, 48.0))
    else:
        age = timedelta(days=rng.uniform(2.0, 365.0))
    # Whole seconds keep the value identical through every store round-trip.
    return (now - age).replace(microsecond=0)


def generate_catalogue(n: int, seed: int = 7, now: datetime | None = None) -> list[Item]:
    """``n`` readable demo items (ids ``item-00000`` ...), deterministic for ``seed``
    and ``now``.

    Categories are assigned round-robin so every category is covered once ``n`` reaches
    their number; about 15% of items carry a second, related category. Titles are unique.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    taken: set[str] = set()
    width = max(5, len(str(max(n - 1, 0))))
    items: list[Item] = []
    for index in range(n):
        spec = _SPECS[index % len(_SPECS)]
        title, values = _make_title(spec, rng, taken)
        taken.add(title)
        first = _sentence(_fill(rng.choice(spec.descriptions), values))
        second = _fill(rng.choice(spec.extras), values)
        categories: tuple[str, ...] = (spec.name,)
        if spec.related and rng.random() < _SECOND_CATEGORY_SHARE:
            categories += (rng.choice(spec.related),)
        tags = tuple(rng.sample(spec.tags, rng.randint(2, min(4, len(spec.tags)))))
        low, high = spec.price
        items.append(
            Item(
                item_id=f"item-{index:0{width}d}",
                title=title,
                description=f"{first} {second}",
                categories=categories,
                tags=tags,
                published_at=_published_at(rng, now),
                attributes={"price": f"{rng.uniform(low, high):.2f}"},
            )
        )
    return items


def primary_category(item: Item) -> str:
    """The category an item was written for (its first one), or "" when it has none."""
    return item.categories[0] if item.categories else ""


def category_names() -> list[str]:
    """The demo categories as a list (for ``make_tastes``)."""
    return list(_SPECS_BY_NAME)
