"""The demo dataset that ``make run`` loads: 36 hand-written queries over six everyday topics.

Each query has one positive and seven or eight hard negatives. The negatives are the other
passages of the same topic (on-topic, as mined negatives are, but they do not answer the query)
and, for a third of the queries, ONE deliberate false negative: a passage listed as negative
that does answer the query. ``DEMO_FALSE_NEGATIVES`` is that ground truth, so the LLM cascade
and the review pages can be checked against it.

The data is written as a BGE jsonl file under ``var/demo/`` and imported through the real
importer, exactly as a user's file would be.
"""

import json
import random
from dataclasses import dataclass
from pathlib import Path

DEMO_DATASET_NAME = "demo"
DEMO_CORPUS_NAME = "demo"


@dataclass(frozen=True)
class DemoQuery:
    text: str
    positive: str
    false_negative: str | None = None


@dataclass(frozen=True)
class DemoTopic:
    name: str
    queries: tuple[DemoQuery, ...]
    # On-topic passages that answer none of the topic's queries.
    distractors: tuple[str, ...]


DEMO_TOPICS: tuple[DemoTopic, ...] = (
    DemoTopic(
        name="coffee",
        queries=(
            DemoQuery(
                "how long should french press coffee steep",
                "French press brewing: after pouring hot water over coarse grounds, let the "
                "coffee steep for about four minutes, then press the plunger down slowly. "
                "Steeping much longer than five minutes pulls out bitter compounds, while under "
                "three minutes tastes thin and sour.",
                false_negative=(
                    "A barista's tip for the plunger pot: give the grounds roughly four minutes "
                    "in the water before you push the filter down, then pour everything out right "
                    "away so the coffee doesn't keep extracting and turn bitter in the carafe."
                ),
            ),
            DemoQuery(
                "what water temperature is best for brewing coffee",
                "The Specialty Coffee Association recommends brewing water between 90 and 96 °C "
                "(195–205 °F). Water that is too hot over-extracts and tastes harsh; water below "
                "about 90 °C leaves coffee under-extracted and sour. Letting boiled water rest "
                "for 30 seconds brings it into range.",
            ),
            DemoQuery(
                "how much caffeine is in a shot of espresso",
                "A single shot of espresso (about 30 ml) contains roughly 60 to 75 milligrams of "
                "caffeine, depending on the beans and the dose; a double shot has about twice "
                "that. Ounce for ounce espresso is strong, but a full mug of drip coffee usually "
                "holds more caffeine in total.",
                false_negative=(
                    "Caffeine in café drinks, by the numbers: one espresso shot delivers around "
                    "63 mg of caffeine on average, so a latte made with a double shot lands near "
                    "125 mg."
                ),
            ),
            DemoQuery(
                "does dark roast coffee have more caffeine than light roast",
                "Roast level barely changes caffeine. Caffeine is stable during roasting, so dark "
                "and light roasts contain nearly the same amount per bean. Because dark-roasted "
                "beans lose more mass and are less dense, a scoop of light roast measured by "
                "volume can even hold slightly more.",
            ),
            DemoQuery(
                "how should I store coffee beans to keep them fresh",
                "Keep whole coffee beans in an opaque, airtight container at room temperature, "
                "away from heat, light and moisture. Buy amounts you will use within two to three "
                "weeks of roasting and grind just before brewing. The fridge is a bad place: "
                "beans absorb odours and condensation.",
            ),
            DemoQuery(
                "what grind size should I use for pour over coffee",
                "For pour-over brewers such as a V60 or Chemex, use a medium-fine grind, similar "
                "in texture to table salt. If the water drains through in under two and a half "
                "minutes, grind finer; if it takes longer than four minutes and tastes bitter, "
                "grind coarser.",
            ),
        ),
        distractors=(
            "Coffee was first cultivated in Ethiopia and Yemen; by the 15th century Sufi "
            "monasteries in Yemen brewed it to stay awake during night prayers. Coffeehouses "
            "spread to Cairo, Istanbul and then Europe in the 1600s.",
            "Decaffeinated coffee is made by soaking green beans in water, a solvent or carbon "
            "dioxide to draw out the caffeine before roasting. The Swiss Water Process uses only "
            "water and activated charcoal filters.",
        ),
    ),
    DemoTopic(
        name="gardening",
        queries=(
            DemoQuery(
                "when should I plant tomato seedlings outside",
                "Move tomato seedlings into the garden after the last spring frost, once night "
                "temperatures stay above 10 °C (50 °F) and the soil has warmed. Harden them off "
                "first by setting them outdoors for a few hours a day over a week.",
                false_negative=(
                    "Tomatoes are tender plants: wait until all danger of frost has passed and "
                    "nights are reliably above 50 °F before transplanting them outdoors, usually "
                    "a week or two after your area's average last frost date."
                ),
            ),
            DemoQuery(
                "how often should I water a vegetable garden",
                "Most vegetable gardens need about 2.5 cm (one inch) of water a week from rain or "
                "irrigation. Water deeply once or twice a week rather than a little every day, so "
                "roots grow down; in sandy soil or a hot spell you may need to water every two to "
                "three days.",
            ),
            DemoQuery(
                "why are the leaves on my tomato plant turning yellow",
                "Yellowing lower leaves on tomato plants are most often caused by nitrogen "
                "deficiency, overwatering, or early blight, a fungus that starts as brown spots "
                "with yellow halos on older leaves. Remove affected leaves, water at the base and "
                "mulch to stop soil splashing onto the foliage.",
            ),
            DemoQuery(
                "how do I get rid of aphids without pesticides",
                "To control aphids without chemicals, knock them off with a strong spray of "
                "water, wipe them away by hand, or spray a mild insecticidal soap. Encourage "
                "ladybirds and lacewings, which eat aphids, and avoid heavy nitrogen feeding that "
                "produces the soft growth aphids love.",
                false_negative=(
                    "Natural aphid control: blast the colonies off the stems with the garden hose "
                    "every few days and attract ladybugs, which can each eat around 50 aphids a "
                    "day. A few drops of dish soap in a spray bottle of water kills them on "
                    "contact."
                ),
            ),
            DemoQuery(
                "what is the best time of day to water plants",
                "Early morning is the best time to water plants: less water evaporates, leaves "
                "dry quickly in the sun, and plants go into the heat of the day well supplied. "
                "Watering in the evening leaves foliage damp overnight, which encourages fungal "
                "diseases.",
            ),
            DemoQuery(
                "how do I start a compost pile",
                "Start a compost pile in a shady spot about one metre square. Layer roughly three "
                "parts brown material (dry leaves, cardboard, straw) to one part green material "
                "(vegetable scraps, grass clippings), keep it as damp as a wrung-out sponge, and "
                "turn it every week or two to let air in.",
            ),
        ),
        distractors=(
            "Raised beds warm up earlier in spring and drain well, which helps in heavy clay. A "
            "bed 1.2 metres wide lets you reach the middle from both sides without stepping on "
            "the soil.",
            "Tomatoes are native to western South America and reached Europe in the 16th century, "
            "where they were long grown as ornamental plants because many people believed the "
            "fruit was poisonous.",
        ),
    ),
    DemoTopic(
        name="cycling",
        queries=(
            DemoQuery(
                "what tire pressure should my road bike have",
                "Road bike tyres of 25 mm are usually run between 80 and 100 psi (5.5–7 bar). "
                "Heavier riders need the upper end; wider tyres and rough roads call for less. "
                "The number on the sidewall is the maximum pressure, not the recommended riding "
                "pressure.",
            ),
            DemoQuery(
                "how often should I lube my bike chain",
                "Lubricate a bicycle chain about every 150–300 km, and after any ride in the "
                "rain. Wipe the chain clean, put one drop of lube on each roller, let it soak in "
                "for a few minutes and wipe off the excess so it does not collect grit.",
                false_negative=(
                    "Rule of thumb from our workshop: if the chain squeaks, looks dry, or you "
                    "have ridden a couple of hundred kilometres since you last oiled it, it's "
                    "time to lube it again, and always after a wet ride."
                ),
            ),
            DemoQuery(
                "how do I fix a flat bicycle tire",
                "To fix a flat, remove the wheel, lever one side of the tyre off the rim and pull "
                "out the inner tube. Find the hole by pumping it up and listening, then patch it "
                "or fit a new tube. Check the inside of the tyre for the thorn or glass that "
                "caused it before refitting and inflating.",
            ),
            DemoQuery(
                "when should I replace my bike chain",
                "Replace a chain once it has stretched by 0.5 percent on 11- and 12-speed "
                "drivetrains, or 0.75 percent on older ones; a cheap chain checker measures this. "
                "Changing a worn chain in time saves the cassette and chainrings, which wear fast "
                "against a stretched chain.",
            ),
            DemoQuery(
                "what size bike frame do I need for my height",
                "Frame size follows height and inseam. As a guide for road bikes, riders of "
                "165–175 cm usually fit a 54 cm frame, 175–183 cm a 56 cm frame and 183–190 cm a "
                "58 cm frame. Standing over the top tube, you want a few centimetres of clearance.",
                false_negative=(
                    "Sizing chart: a rider around 1.80 m tall generally needs a medium road frame "
                    "of about 56 cm, and someone around 1.70 m usually rides a 54 cm. Inseam and "
                    "reach matter too, so test ride before you buy."
                ),
            ),
            DemoQuery(
                "why does my bike make a clicking noise when pedaling",
                "A rhythmic click while pedalling usually comes from the drivetrain: a loose "
                "pedal or crank bolt, a dry or worn bottom bracket, or a derailleur slightly out "
                "of adjustment. Tighten the pedals and crank bolts first, then check whether the "
                "noise stops when you coast.",
            ),
        ),
        distractors=(
            "The Tour de France, first held in 1903, covers about 3,500 km over 21 stages in "
            "July. The leader of the general classification wears the yellow jersey.",
            "Disc brakes stop more reliably in the wet than rim brakes and do not wear out the "
            "rim, but they are heavier, and hydraulic versions need an occasional bleed.",
        ),
    ),
    DemoTopic(
        name="personal finance",
        queries=(
            DemoQuery(
                "what is a good credit score",
                "On the FICO scale of 300 to 850, a score of 670 to 739 is considered good, 740 "
                "to 799 very good and 800 or above exceptional. Lenders usually offer their best "
                "interest rates to borrowers above about 740.",
            ),
            DemoQuery(
                "how much should I keep in an emergency fund",
                "Financial planners commonly recommend an emergency fund that covers three to six "
                "months of essential living expenses, kept in an easily accessible savings "
                "account. People with irregular income or a single earner in the household may "
                "want closer to nine to twelve months.",
                false_negative=(
                    "Before investing, build a cushion worth roughly three to six months of your "
                    "necessary costs (rent, food, insurance, loan payments) in a high-yield "
                    "savings account you can reach within a day."
                ),
            ),
            DemoQuery(
                "what is the difference between a Roth IRA and a traditional IRA",
                "With a traditional IRA, contributions may be tax-deductible now and withdrawals "
                "in retirement are taxed as income. With a Roth IRA you contribute money that has "
                "already been taxed, and qualified withdrawals in retirement are tax-free. Roth "
                "IRAs also have income limits for contributing.",
            ),
            DemoQuery(
                "how does compound interest work",
                "Compound interest is interest earned both on the original deposit and on "
                "interest already added. For example, $1,000 at 5 percent a year becomes $1,050 "
                "after one year and $1,102.50 after two, because the second year's interest is "
                "also paid on the first year's $50.",
            ),
            DemoQuery(
                "how long does a late payment stay on my credit report",
                "In the United States a late payment reported to the credit bureaus stays on your "
                "credit report for seven years from the date of the missed payment. Its effect on "
                "your score fades over time, especially if later payments are on time.",
                false_negative=(
                    "Credit bureaus keep a record of delinquent payments for seven years; after "
                    "that the entry drops off your report automatically."
                ),
            ),
            DemoQuery(
                "how do I stop my bank account from being overdrawn",
                "To avoid overdrafts, set up low-balance alerts in your banking app, link a "
                "savings account for overdraft-protection transfers, and opt out of overdraft "
                "coverage for debit card purchases so that a payment is declined instead of "
                "taking the balance below zero.",
            ),
        ),
        distractors=(
            "Credit unions are not-for-profit cooperatives owned by their members. They often pay "
            "slightly higher savings rates and charge lower fees than commercial banks.",
            "An index fund holds every stock in a market index such as the S&P 500, so its return "
            "tracks the market. Because nobody picks stocks, yearly fees are often below 0.1 "
            "percent.",
        ),
    ),
    DemoTopic(
        name="travel",
        queries=(
            DemoQuery(
                "how long does it take to renew a US passport",
                "Routine US passport renewals by mail take about four to six weeks from the day "
                "the application is received, not counting mailing time. Expedited service, for "
                "an extra $60, cuts this to two to three weeks.",
                false_negative=(
                    "Plan ahead: the State Department processes a routine passport renewal in "
                    "roughly 4–6 weeks, and paying for expedited processing brings that down to "
                    "about 2–3 weeks."
                ),
            ),
            DemoQuery(
                "do I need a visa to visit Japan as a US citizen",
                "US citizens do not need a visa to visit Japan for tourism or business trips of "
                "up to 90 days. You need a passport valid for the length of your stay and may be "
                "asked to show a return or onward ticket.",
            ),
            DemoQuery(
                "how much liquid can I take in my carry on",
                "Under the TSA 3-1-1 rule, liquids, gels and aerosols in carry-on bags must be in "
                "containers of 3.4 ounces (100 ml) or less, all fitting in one quart-sized clear "
                "bag, one bag per passenger.",
            ),
            DemoQuery(
                "what can I do to avoid jet lag",
                "To reduce jet lag, shift your sleep an hour a day toward the destination's time "
                "zone a few days before flying, get bright daylight in the morning after flying "
                "east, drink plenty of water and avoid long naps on arrival.",
                false_negative=(
                    "Travel doctors suggest adapting to the new time zone as fast as possible: go "
                    "outside in the morning sun, eat meals at local times, and take 0.5–3 mg of "
                    "melatonin at the local bedtime for the first few nights."
                ),
            ),
            DemoQuery(
                "what happens if my checked bag is lost",
                "If your checked bag does not arrive, file a report at the airline's baggage desk "
                "before leaving the airport and keep the reference number. Most bags turn up "
                "within a few days; a bag missing for 21 days is treated as lost and you can "
                "claim compensation up to the airline's liability limit.",
            ),
            DemoQuery(
                "can I bring my own food through airport security",
                "Solid food such as sandwiches, fruit, snacks and baked goods can go through "
                "airport security in your carry-on bag. Spreadable or runny foods like yoghurt, "
                "soup or peanut butter are screened as liquids.",
            ),
        ),
        distractors=(
            "Travel insurance typically covers trip cancellation, emergency medical care abroad "
            "and delayed baggage. Policies differ on pre-existing conditions, so read the "
            "exclusions before buying.",
            "Japan's Shinkansen bullet trains connect Tokyo and Osaka in about two and a half "
            "hours. The Japan Rail Pass gives unlimited rides on most JR lines for 7, 14 or 21 "
            "days.",
        ),
    ),
    DemoTopic(
        name="pets",
        queries=(
            DemoQuery(
                "how often should I feed my puppy",
                "Puppies under three months old should eat four small meals a day. From three to "
                "six months, feed three meals a day, and from about six months most puppies can "
                "move to two meals a day, which they usually keep as adults.",
            ),
            DemoQuery(
                "can dogs eat grapes",
                "No. Grapes and raisins can cause sudden kidney failure in dogs, and even a small "
                "amount can be dangerous for some dogs. If your dog eats grapes, call your vet or "
                "a pet poison helpline right away, even if it seems fine.",
                false_negative=(
                    "Keep raisins and grapes away from your dog: they are toxic to dogs and have "
                    "been linked to acute kidney injury, and no safe amount is known."
                ),
            ),
            DemoQuery(
                "why does my cat knead with its paws",
                "Cats knead, pressing their paws in and out against something soft, because of a "
                "behaviour learned as kittens, when kneading helped milk flow while nursing. "
                "Adult cats knead when they feel content, and scent glands in the paws also mark "
                "the spot as theirs.",
            ),
            DemoQuery(
                "how often should I bathe my dog",
                "Most dogs only need a bath every four to six weeks, or when they get dirty or "
                "smelly. Bathing too often strips natural oils and dries out the skin. Dogs with "
                "oily coats, such as basset hounds, may need more frequent baths.",
            ),
            DemoQuery(
                "how do I stop my cat from scratching the furniture",
                "Give your cat a sturdy scratching post taller than it is when stretched out, "
                "placed next to the furniture it scratches. Reward it for using the post, cover "
                "the furniture with double-sided tape or a throw for a few weeks, and keep its "
                "claws trimmed.",
                false_negative=(
                    "Punishing a cat for scratching rarely works. Put a tall, stable scratching "
                    "post right beside the sofa, make the sofa unattractive with sticky tape, and "
                    "give your cat a treat every time it uses the post instead."
                ),
            ),
            DemoQuery(
                "at what age should a puppy be vaccinated",
                "Puppies get their first vaccinations at six to eight weeks of age, with boosters "
                "every three to four weeks until they are about 16 weeks old. The rabies vaccine "
                "is usually given at 12 to 16 weeks, depending on local law.",
            ),
        ),
        distractors=(
            "Greyhounds can reach about 70 km/h, making them the fastest dog breed. Even so, "
            "retired racing greyhounds are often calm and spend much of the day asleep.",
            "Indoor cats live on average 12 to 18 years. Neutering, a healthy weight and regular "
            "dental care all help cats live longer.",
        ),
    ),
)

# Ground truth: (query text, passage text) of every negative that actually answers its query.
DEMO_FALSE_NEGATIVES: frozenset[tuple[str, str]] = frozenset(
    (query.text, query.false_negative)
    for topic in DEMO_TOPICS
    for query in topic.queries
    if query.false_negative
)


def demo_records(*, seed: int = 7) -> list[dict]:
    """BGE records ``{query, pos, neg}``. The order of the negatives is shuffled with a fixed
    seed, so the false negative is not always in the same place but the file never changes."""
    rng = random.Random(seed)
    records = []
    for topic in DEMO_TOPICS:
        pool = [q.positive for q in topic.queries] + list(topic.distractors)
        for query in topic.queries:
            negatives = [text for text in pool if text != query.positive]
            if query.false_negative:
                negatives.append(query.false_negative)
            rng.shuffle(negatives)
            records.append({"query": query.text, "pos": [query.positive], "neg": negatives})
    return records


def demo_file_write(*, path: Path) -> Path:
    """Write the demo dataset as BGE jsonl to ``path``; rewrites it only when it differs, so
    its modification time says when the demo content last changed."""
    content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in demo_records())
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != content:
        path.write_text(content, encoding="utf-8")
    return path


@dataclass
class DemoLoadResult:
    dataset: object  # curation.models.Dataset
    created: bool
    stats: dict


def demo_dataset_load(*, user=None) -> DemoLoadResult:
    """Import the demo dataset as ``demo`` through the real importer, unless it is there."""
    from django.conf import settings

    from curation.datasets.imports import dataset_import
    from curation.models import Dataset, DatasetFormat

    existing = Dataset.objects.filter(name=DEMO_DATASET_NAME).first()
    if existing is not None:
        return DemoLoadResult(dataset=existing, created=False, stats={})
    path = demo_file_write(path=Path(settings.VAR_DIR) / "demo" / "demo.bge.jsonl")
    result = dataset_import(
        source=path,
        dataset_name=DEMO_DATASET_NAME,
        format=DatasetFormat.BGE,
        corpus_name=DEMO_CORPUS_NAME,
        user=user,
    )
    return DemoLoadResult(dataset=result.dataset, created=True, stats=result.stats)
