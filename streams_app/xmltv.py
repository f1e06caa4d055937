"""The XMLTV guide document (valid against xmltv.dtd) from the channels' listings.

Each programme carries what Plex and Jellyfin read to class and label it: episode numbers in
both systems (Plex takes a programme without one for a movie), "Series" or "Movie" then the
genres as categories, the artwork as its icon, and `previously-shown` on every airing but an
asset's first on the channel (a programme without it is shown as new). Elements follow the
DTD's order: title, sub-title, desc, date, category, icon, episode-num, previously-shown, rating.
Built with lxml (a guide holds tens of thousands of elements: ElementTree's serializer took a
fifth of a render), and what an asset contributes is worked out once per asset, not per airing.
"""
from datetime import UTC, timedelta

from lxml.etree import Element, SubElement, tostring

from .listings import channel_listings, one_line

GUIDE_HOURS = 48  # how far ahead the guide lists: the rules build schedules at least this far


def tvg_id(channel):
    """The channel's id in the guide, which the M3U's tvg-id repeats."""
    return f"retrovue.{channel.number}"


def xmltv_time(moment):
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S +0000")


def xmltv_ns(asset):
    """The episode in the xmltv_ns system: "season.episode." counted from zero ("0.1." is
    S01E02), a number not known left out. The system has no episode ranges, so a double
    episode gives its first (its onscreen number shows the range)."""
    season = str(asset.season - 1) if asset.season else ""
    episode = str(asset.episode - 1) if asset.episode else ""
    return f"{season}.{episode}." if season or episode else ""


def add_text(parent, tag, text, **attributes):
    SubElement(parent, tag, attributes).text = text


def asset_facts(airing, artwork_url):
    """What a programme's asset adds, whichever airing of it asks: (date, categories, icon,
    onscreen and xmltv_ns episode numbers, rating)."""
    asset = airing.asset
    return (str(asset.year) if asset.year else "", airing.categories, artwork_url(asset),
            airing.episode_label, xmltv_ns(asset), airing.rating)


def add_programme(tv, channel_id, airing, facts):
    programme = SubElement(tv, "programme", start=xmltv_time(airing.start), stop=xmltv_time(airing.stop),
                           channel=channel_id)
    add_text(programme, "title", airing.title)
    if airing.sub_title:
        add_text(programme, "sub-title", airing.sub_title)
    if airing.description:
        add_text(programme, "desc", airing.description)
    date, categories, icon, onscreen, numbers, rating = facts or ("", (), None, "", "", "")
    if date:
        add_text(programme, "date", date)
    for category in categories:
        add_text(programme, "category", category)
    if icon:
        SubElement(programme, "icon", src=icon)
    if onscreen:
        add_text(programme, "episode-num", onscreen, system="onscreen")
        if numbers:
            add_text(programme, "episode-num", numbers, system="xmltv_ns")
    if not airing.first_airing:
        SubElement(programme, "previously-shown")
    if rating:
        add_text(SubElement(programme, "rating"), "value", rating)


def xmltv(channels, now, logo_url, artwork_url):
    """Every channel (its icon being its logo, from `logo_url(channel)`, when it has one), then
    what they air from the current programme to GUIDE_HOURS ahead; `artwork_url(asset)` gives a
    programme's icon (or None)."""
    tv = Element("tv", {"generator-info-name": "RetroVue"})
    for channel in channels:
        node = SubElement(tv, "channel", id=tvg_id(channel))
        add_text(node, "display-name", one_line(channel.name))
        add_text(node, "display-name", str(channel.number))
        if icon := logo_url(channel):  # after the display names, as the DTD orders them
            SubElement(node, "icon", src=icon)
    listings = channel_listings(channels, now, now + timedelta(hours=GUIDE_HOURS), now)
    facts = {}
    for channel, airings in listings.items():
        for airing in airings:
            asset = airing.asset
            if asset is not None and asset.pk not in facts:
                facts[asset.pk] = asset_facts(airing, artwork_url)
            add_programme(tv, tvg_id(channel), airing, asset and facts[asset.pk])
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tv SYSTEM "xmltv.dtd">\n'
            + tostring(tv, encoding="unicode") + "\n")
