"""What a media file's name, folders and neighbours say about it: the episode or movie its
path spells, Kodi .nfo files beside it, its embedded tags, and artwork.

No database here: a scan calls `describe` for each new or changed file and stores the fields on
its MediaAsset. An .nfo overrides the file's name, which overrides embedded tags. Texts come
from files, not from an operator: they are cleaned and cut to their field's length.
"""
import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

from channels_app.models import MediaAsset
from channels_app.validation import NOT_XML

NFO_MAX_BYTES = 1_000_000
PLOT_MAX = 10_000
LABEL_MAX, LABELS_MAX = 100, 50  # one genre or tag; how many are kept
IMAGE_TYPES = (".jpg", ".png")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# S01E02, s1e2, S01E02E03 and S01E02-E03 (the last episode number is where it ends).
SEASON_EPISODE = re.compile(r"(?<![a-z0-9])s(?P<season>\d{1,3})[ ._-]?e(?P<episode>\d{1,4})"
                            r"(?P<more>(?:[ ._-]?e\d{1,4})*)(?!\d)", re.IGNORECASE)
CROSS = re.compile(r"(?<![a-z0-9])(?P<season>\d{1,2})x(?P<episode>\d{1,3})(?!\d)", re.IGNORECASE)
SEASON_FOLDER = re.compile(r"(?:season|series|s)[ ._-]*(\d{1,3})", re.IGNORECASE)
MOVIE_YEAR = re.compile(r"(?P<title>.*?)[ ._]*\((?P<year>(?:18|19|20)\d\d)\)")
TRAILING_YEAR = re.compile(r"\s*\((?:18|19|20)\d\d\)$")
DECLARATIONS = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
XML_DECLARATION = re.compile(r"<\?xml[^>]*\?>")


def _max_length(name):
    return MediaAsset._meta.get_field(name).max_length


def _line(text):
    """One line of text: control characters and what XML cannot carry gone, spaces collapsed."""
    return " ".join(NOT_XML.sub("", CONTROL.sub(" ", str(text))).split())


def _paragraphs(text):
    return "\n".join(_line(line) for line in str(text).replace("\r\n", "\n").split("\n")).strip()


def _words(text):
    """A name's words: 'Show.Name' and 'Show_Name' read as 'Show Name'; separators at the ends go."""
    if " " not in text:
        text = text.replace(".", " ").replace("_", " ")
    return _line(text).strip(" -._")


def _number(text):
    text = str(text or "").strip()
    return int(text) if text.isdigit() and len(text) <= 5 else None


def _year(text):
    found = re.match(r"\s*(\d{4})", str(text or ""))
    return int(found[1]) if found and 1800 <= int(found[1]) <= 2200 else None


def _labels(values):
    """Genres or tags: each cleaned and cut, repeats dropped, at most LABELS_MAX."""
    kept = []
    for value in values:
        label = _line(value)[:LABEL_MAX]
        if label and label not in kept:
            kept.append(label)
    return kept[:LABELS_MAX]


def _rating(text):
    """'Rated PG-13' and 'US:TV-14' as 'PG-13' and 'TV-14'."""
    text = _line(text or "")
    text = text[6:] if text.lower().startswith("rated ") else text
    return text.rpartition(":")[2].strip()


def _season_number(folder):
    """The season a folder is named for ('Season 01', 'S2', 'Specials': 0), or None."""
    if folder.lower() == "specials":
        return 0
    found = SEASON_FOLDER.fullmatch(folder)
    return int(found[1]) if found else None


def _episode_name(path):
    folders = path.parts[:-1]
    season_folder = _season_number(folders[-1]) if folders else None
    found = SEASON_EPISODE.search(path.stem) or CROSS.search(path.stem)
    fields = {"kind": "show", "season": season_folder}
    prefix, title = "", path.stem
    if found:
        prefix, title = path.stem[:found.start()], path.stem[found.end():]
        fields.update(season=int(found["season"]), episode=int(found["episode"]))
        later = re.findall(r"\d+", found.groupdict().get("more") or "")
        fields["episode_end"] = int(later[-1]) if later else None
    above_season = folders[-2] if season_folder is not None and len(folders) > 1 else ""
    parent = folders[-1] if folders and season_folder is None else ""
    show = _words(above_season) or _words(prefix) or _words(parent)
    return {**fields, "show": TRAILING_YEAR.sub("", show), "title": _words(title)}


def _movie_name(path):
    for name in (path.stem, path.parent.name):
        found = MOVIE_YEAR.match(name)
        if found and found["title"].strip():
            return {"kind": "movie", "title": _words(found["title"]), "year": int(found["year"])}
    return {"kind": "movie", "title": _words(path.stem)}


def parse_name(relative, kind):
    """What a file's path (relative to its library) says, by the library's kind: "shows" reads
    `Show/Season 01/Show - S01E02 - Title.ext` (or 1x02, S01E02E03), "movies" reads
    `Title (1985).ext` or `Title (1985)/anything.ext`, "other" takes the file's stem as title."""
    path = PurePosixPath(relative)
    if kind == "shows":
        return _episode_name(path)
    if kind == "movies":
        return _movie_name(path)
    return {"kind": "", "title": path.stem}


def _tag_fields(tags):
    """What the container's tags (ffprobe format tags, lower-case names) say."""
    episode_id = tags.get("episode_id", "")
    token = SEASON_EPISODE.search(episode_id)  # 'S01E02' (a plain number is an episode's)
    return {
        "title": tags.get("title"),
        "show": tags.get("show"),
        "season": _number(tags.get("season_number")) or (int(token["season"]) if token else None),
        "episode": (_number(tags.get("episode_sort")) or _number(episode_id)
                    or (int(token["episode"]) if token else None)),
        "year": _year(tags.get("date") or tags.get("year")),
        "genres": [genre for genre in re.split(r"[;,/]", tags.get("genre", "")) if genre.strip()],
        "plot": tags.get("synopsis") or tags.get("description") or tags.get("comment"),
    }


def read_nfo(path):
    """The top elements of a Kodi .nfo file (several for a multi-episode file; a scraper URL
    after the XML is ignored). ValueError says why it cannot be read: too large, declaring a
    DOCTYPE or entities (refused unparsed: they could expand or reach outside), or malformed."""
    with open(path, "rb") as nfo:
        data = nfo.read(NFO_MAX_BYTES + 1)
    if len(data) > NFO_MAX_BYTES:
        raise ValueError(f"larger than {NFO_MAX_BYTES} bytes")
    text = data.decode("utf-8-sig", errors="replace")
    if DECLARATIONS.search(text):
        raise ValueError("declares a DOCTYPE or entities (refused)")
    try:
        return list(ET.fromstring(f"<nfo>{XML_DECLARATION.sub('', text)}</nfo>"))
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML ({exc})") from None


def _nfo_fields(element):
    """Fields of a <tvshow>, <episodedetails> or <movie> element."""
    def text(tag):
        return (element.findtext(tag) or "").strip()

    fields = {
        "title": text("title"),
        "plot": text("plot") or text("outline"),
        "genres": [g.text or "" for g in element.findall("genre")],
        "tags": [t.text or "" for t in element.findall("tag")],
        "content_rating": _rating(text("mpaa")),
        "year": _year(text("year")) or _year(text("aired")) or _year(text("premiered")),
    }
    if element.tag == "tvshow":
        fields["show"] = fields.pop("title")
    if element.tag == "episodedetails":
        fields.update(season=_number(text("season")), episode=_number(text("episode")))
    return fields


def nfo_layer(path, expected):
    """Fields of an .nfo file whose first element should be `expected`; ValueError if not."""
    elements = read_nfo(path)
    if not elements or elements[0].tag != expected:
        raise ValueError(f"holds no <{expected}> element")
    fields = _nfo_fields(elements[0])
    if len(elements) > 1 and expected == "episodedetails":
        fields["episode_end"] = _number(elements[-1].findtext("episode"))
    return fields


def _images(folder, names):
    return [folder / f"{name}{ext}" for name in names for ext in IMAGE_TYPES]


def sidecars(relative, kind):
    """A media file's possible .nfo files ((path, element), lowest precedence first) and artwork
    (best first), as paths relative to its library. A movie in a sub-folder of its library is
    taken to have that folder to itself (movie.nfo, poster.jpg there are its own)."""
    path = PurePosixPath(relative)
    own_nfo = (path.with_suffix(".nfo"), "episodedetails" if kind == "shows" else "movie")
    if kind == "shows":
        folder = path.parent
        show_folder = folder.parent if _season_number(folder.name) is not None else folder
        artwork = [path.with_name(f"{path.stem}-thumb{ext}") for ext in IMAGE_TYPES]
        for place in dict.fromkeys([folder, show_folder]):
            artwork += _images(place, ("poster", "folder"))
        return [(show_folder / "tvshow.nfo", "tvshow"), own_nfo], artwork
    if kind == "movies":
        own_folder = path.parent != PurePosixPath(".")
        artwork = [path.with_name(f"{path.stem}-poster{ext}") for ext in IMAGE_TYPES]
        if not own_folder:
            return [own_nfo], artwork
        artwork += _images(path.parent, ("poster", "folder", "fanart"))
        return [(path.parent / "movie.nfo", "movie"), own_nfo], artwork
    return [], []


def _inside(root, relative):
    """The resolved path of a file at root/relative, if it is one and stays inside root."""
    path = (root / relative).resolve()
    return path if path.is_file() and path.is_relative_to(root) else None


def _merged(layers):
    fields = {}
    for layer in layers:
        fields.update({key: value for key, value in layer.items() if value not in (None, "", [])})
    return fields


def _bounded(fields, stem):
    """The fields as stored: texts cleaned and cut to their columns, an episode range that ends
    after it starts, the file's stem as title when nothing named it."""
    titles = {name: _line(fields.get(name, ""))[:_max_length(name)] for name in ("title", "show")}
    end = fields.get("episode_end")
    return {
        "kind": fields.get("kind", ""), "show": titles["show"],
        "title": titles["title"] or _line(stem)[:_max_length("title")],
        "season": fields.get("season"), "episode": fields.get("episode"),
        "episode_end": end if end and end > (fields.get("episode") or 0) else None,
        "plot": _paragraphs(fields.get("plot", ""))[:PLOT_MAX],
        "genres": _labels(fields.get("genres", [])), "tags": _labels(fields.get("tags", [])),
        "year": fields.get("year"),
        "content_rating": _line(fields.get("content_rating", ""))[:_max_length("content_rating")],
    }


def describe(root, relative, kind, tags):
    """(MediaAsset metadata fields, problems) for the file at root/relative in a library of
    `kind` ("shows", "movies", "other") whose container carries `tags`. A problem is an .nfo
    that could not be used, with the reason; it is skipped, never fatal."""
    root = Path(root)
    layers, problems = [_tag_fields(tags), parse_name(relative, kind)], []
    nfos, artwork = sidecars(relative, kind)
    for nfo, expected in nfos:
        found = _inside(root, nfo)
        if found:
            try:
                layers.append(nfo_layer(found, expected))
            except (OSError, ValueError) as exc:
                problems.append({"path": str(found), "reason": str(exc)})
    image = next((str(found) for found in (_inside(root, a) for a in artwork) if found), "")
    valid_image = len(image) <= _max_length("artwork") and not CONTROL.search(image)
    return {**_bounded(_merged(layers), PurePosixPath(relative).stem),
            "artwork": image if valid_image else ""}, problems
