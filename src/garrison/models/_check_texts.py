"""A built-in held-out set for checking an optimized embedder against its source.

Varied English sentences and paragraphs (operations, logistics, weather, medicine, finance,
software, law, science, everyday prose), written for Garrison and unmarked: what
``garrison model optimize`` checks fidelity on when the workspace holds too few readable
chunks and the caller gives no texts of their own.
"""

from __future__ import annotations

__all__ = ["CHECK_TEXTS"]

_SENTENCES = [
    "The convoy left the northern depot two hours before dawn.",
    "Fuel deliveries to the forward airfield were delayed by the storm.",
    "The committee approved the revised budget for the field offices.",
    "A patrol reported unusual radar activity near the eastern border.",
    "Maintenance crews replaced the hydraulic pump on the second aircraft.",
    "The clinic ran out of tetanus vaccine on Thursday afternoon.",
    "Network traffic spiked after the firmware update was pushed to the routers.",
    "The harbor master closed berth four while divers inspected the pier.",
    "Quarterly inventory found forty missing radios at the warehouse.",
    "Heavy rain is expected along the river valley through the weekend.",
    "The analyst summarized the intercepted messages in a two-page memo.",
    "Training for the new logistics software starts next Monday.",
    "The bridge on route seven is rated for vehicles under twenty tonnes.",
    "A cargo vessel declared a mechanical failure outside the shipping lane.",
    "The audit found that three invoices had been paid twice.",
    "Satellite imagery shows new construction at the old quarry.",
    "The roster lists twelve medics available for the night shift.",
    "Server room temperatures rose after the cooling unit failed.",
    "The exercise was postponed because of the snow on the ranges.",
    "Passengers were told to expect delays of up to three hours.",
    "The contract requires the supplier to deliver spare parts within ten days.",
    "She translated the technical manual from French into English.",
    "The outbreak was traced to contaminated water at the camp.",
    "Our team patched the database server late on Friday night.",
    "The map grid was updated to reflect the new sector boundaries.",
    "Wind gusts of sixty kilometres per hour grounded the helicopters.",
    "The court ruled that the evidence had been collected lawfully.",
    "The telescope recorded a faint signal from a distant galaxy.",
    "He baked bread every Sunday morning for the whole street.",
    "The museum reopened after a year of renovation work.",
    "Interest rates rose for the third month in a row.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "A power outage left the eastern districts dark for six hours.",
    "The pilot reported light turbulence over the mountains.",
    "Students must submit their theses by the end of April.",
    "The dam's spillway gates were opened to relieve the reservoir.",
    "Volunteers planted three hundred trees along the riverbank.",
    "The software license expires at the end of the fiscal year.",
    "A new vaccine trial enrolled two thousand participants.",
    "The freight train derailed near the junction but nobody was hurt.",
]

_PARAGRAPHS = [
    "Supply levels at the southern warehouse are adequate for two weeks. Fuel remains the "
    "main concern, since the pipeline repair is behind schedule. Planners recommend moving "
    "two tankers from the northern depot before the roads close.",
    "The storm made landfall shortly after midnight. Coastal villages lost power and two "
    "bridges were washed out. Rescue teams are working with local volunteers to reach the "
    "farms cut off by the flooding.",
    "During the exercise, the signals unit tested a new encrypted radio. Reception was good "
    "on the plain but poor in the valleys. The unit asked for relay stations on the ridge "
    "before the next rotation.",
    "The hospital reported a rise in respiratory infections among children. Doctors believe "
    "the cold snap and crowded schools are to blame. Vaccination clinics will open on "
    "weekends for the rest of the month.",
    "Revenue for the quarter came in below the forecast. Costs for transport and energy rose "
    "faster than expected, while sales in the export markets stalled. The board will review "
    "spending plans at its next meeting.",
    "Engineers traced the outage to a faulty switch in the main data centre. Traffic was "
    "rerouted within twenty minutes, but several services stayed slow until the afternoon. "
    "A full report on the incident is due next week.",
    "The harbour will be dredged over the summer to admit larger vessels. Fishing boats will "
    "use the old quay while the work goes on. The port authority expects the project to "
    "finish before the autumn storms.",
    "The new runway lighting system failed its first inspection. Inspectors found loose "
    "wiring in three junction boxes and a controller that ignored manual overrides. The "
    "contractor has two weeks to fix the faults.",
    "Our patrol crossed the river at the shallow ford and followed the track to the ridge. "
    "We saw fresh tyre marks but no vehicles. The observation post on the ridge reported "
    "nothing unusual during the night.",
    "The library is digitizing its collection of old maps. Volunteers scan each sheet at "
    "high resolution and record its date and scale. The scans will be published online "
    "once the catalogue is complete.",
    "Farmers in the valley are worried about the dry spring. Reservoirs are at half their "
    "usual level and the snowpack melted early. The water board may limit irrigation if "
    "there is no rain by June.",
    "The court heard that the company ignored repeated safety warnings. Two workers were "
    "injured when the scaffolding collapsed. The judge will announce the penalty after "
    "reviewing the inspection reports.",
    "A software update for the logistics system will be rolled out in stages. Depots in the "
    "north go first, followed by the ports and then the airfields. Users should save their "
    "work before the nightly maintenance window.",
    "Researchers measured the temperature of the lake every hour for a year. The surface "
    "warmed by almost two degrees compared with records from the previous decade. Fish "
    "populations have shifted towards the cooler, deeper water.",
    "The town council voted to build a new school on the site of the old market. "
    "Construction should start next spring and take eighteen months. Parents asked for a "
    "safe crossing on the main road before the school opens.",
    "The cargo manifest listed machine parts, medical supplies and canned food. Customs "
    "officers opened three containers at random and found the contents matched. The ship "
    "was cleared to unload the following morning.",
    "Air traffic control reported a drone near the approach path. Two flights were put in "
    "a holding pattern until the police located the operator. Nobody was charged, but the "
    "drone was confiscated.",
    "The kitchen will be closed for repairs from Monday to Wednesday. Meals will be served "
    "in the gymnasium during that time. Staff with dietary needs should contact the "
    "catering office in advance.",
    "Analysts compared the satellite images from March and September. A new road now links "
    "the quarry to the highway, and several buildings have been extended. The change "
    "suggests the site is being prepared for heavier traffic.",
    "The personnel office is updating its records before the annual review. Every employee "
    "should check their contact details, emergency contacts and training certificates. "
    "Missing certificates must be uploaded by the end of the month.",
    "Our clinic in the eastern district treats about sixty patients a day. Most come with "
    "minor injuries or infections, but we also see chronic conditions that went untreated "
    "for years. A second doctor would halve the waiting time.",
    "The budget request covers new vehicles, radio equipment and building repairs. Vehicle "
    "replacement is the largest item, since half the fleet is more than twelve years old. "
    "Without it, maintenance costs will keep climbing.",
    "Heavy snow closed the mountain pass for the third time this winter. Trucks waited at "
    "the checkpoint overnight while ploughs cleared the road. The pass reopened at noon "
    "with chains required for all vehicles.",
    "The research team released its dataset of annotated bird songs. Each recording is "
    "labelled with the species, the location and the time of day. Other groups can use it "
    "to train and test automatic identification tools.",
]

#: The built-in held-out texts: short sentences first, then paragraphs.
CHECK_TEXTS: tuple[str, ...] = (*_SENTENCES, *_PARAGRAPHS)
