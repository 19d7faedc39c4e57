"""The labelling panel's controls, laid out; :class:`~.annotate.AnnotateWidget` holds what they do."""

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, LineEdit
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QRadioButton,
)
from superqt import QCollapsible

from ..conventions import CLASS_TITLES, CMB, IRON
from ..rating.decisions import REJECTION_REASONS, default_rater
from ._annotate_text import KEYS, REJECT_CHOICE, class_colour, keys_table
from ._consensus import ConsensusPanel
from ._docking import scrolling_layout
from ._inputs import SubjectInputs


class AnnotateLayout:
    """Builds the labelling panel's controls on ``self`` (a QWidget with a ``viewer``) and connects them to the
    panel's actions (start, find_candidates, previous, next, accept, reject, export...)."""

    def _build(self) -> None:
        layout = scrolling_layout(self)  # the widget fits any screen height: what does not fit scrolls
        self._build_session(layout)
        self._build_paint_classes(layout)
        self._build_candidate_list(layout)
        self._build_decisions(layout)
        self._build_guidance(layout)

    def _build_session(self, layout) -> None:
        """Subject, annotation folder, rater, blinding and the Start button."""
        self.inputs = SubjectInputs(self.viewer)
        layout.addWidget(self.inputs.native)
        self.folder_edit = FileEdit(
            label="Save to", mode="d", nullable=True, tooltip="Empty: <dataset>/derivatives/deepmir-annotations/"
        )
        self.folder_edit.line_edit.native.setPlaceholderText("<dataset>/derivatives/deepmir-annotations/")
        self.rater_edit = LineEdit(
            label="Rater", value=default_rater(), tooltip="Your name or initials: recorded with every decision"
        )
        where = Container(widgets=[self.folder_edit, self.rater_edit], labels=True)
        where.margins = (0, 0, 0, 0)
        layout.addWidget(where.native)
        self.blinded_check = CheckBox(
            text="Blinded first pass (unranked, no suggestions)",
            tooltip="Chosen before a subject's session starts; a blinded session stays blinded",
        )
        layout.addWidget(self.blinded_check.native)
        self.start_button = QPushButton("Start / resume")
        self.start_button.setToolTip("Open the subject's annotation (or resume it where it was left) as a layer")
        self.start_button.clicked.connect(lambda: self.start())
        layout.addWidget(self.start_button)
        self.mode_label = QLabel(wordWrap=True)
        layout.addWidget(self.mode_label)

    def _build_paint_classes(self, layout) -> None:
        """The class to paint with, the brush size and the counts painted."""
        classes = QGroupBox("Paint class")
        class_layout = QGridLayout(classes)
        self.class_group = QButtonGroup(self)
        self.class_buttons = {}
        for row, value in enumerate((CMB, IRON)):
            button = QRadioButton(CLASS_TITLES[value])
            button.setToolTip(f"Paint with the brush as {CLASS_TITLES[value]} (Shift+{'C' if value == CMB else 'I'})")
            button.setStyleSheet(f"color: {class_colour(value)}")
            self.class_group.addButton(button, value)
            self.class_buttons[value] = button
            class_layout.addWidget(button, row, 0)
        self.class_buttons[CMB].setChecked(True)
        self.class_group.idToggled.connect(lambda value, on: on and self._set_paint_class(value))
        self.brush_mm = FloatSpinBox(
            min=0.5, max=20.0, step=0.5, value=2.0, tooltip="Brush diameter in millimetres ([ and ] change it too)"
        )
        self.brush_mm.changed.connect(self._apply_brush_size)
        class_layout.addWidget(QLabel("brush (mm)"), 2, 0)
        class_layout.addWidget(self.brush_mm.native, 2, 1)
        self.counts_label = QLabel()
        class_layout.addWidget(self.counts_label, 3, 0, 1, 2)
        layout.addWidget(classes)

    def _build_candidate_list(self, layout) -> None:
        """Find candidates (with or without model probabilities) and their list."""
        find_row = QHBoxLayout()
        self.find_button = QPushButton("Find candidates")
        self.find_button.clicked.connect(self.find_candidates)
        self.find_button.setToolTip("List dark SWI blobs to review, best first (in a random order when blinded)")
        self.use_model = CheckBox(
            text="use model probabilities",
            tooltip="Rank candidates with the probability layers of a detection (never in a blinded session)",
        )
        find_row.addWidget(self.find_button)
        find_row.addWidget(self.use_model.native)
        layout.addLayout(find_row)
        self.busy = QProgressBar(minimum=0, maximum=0, visible=False, textVisible=False)
        layout.addWidget(self.busy)
        self.progress_label = QLabel("no candidates yet")
        layout.addWidget(self.progress_label)
        self.candidate_list = QListWidget()
        self.candidate_list.currentRowChanged.connect(self._on_row_selected)
        self.candidate_list.setMinimumHeight(150)
        self.candidate_list.setToolTip("Candidates and your decisions; a click shows one in the viewer")
        layout.addWidget(self.candidate_list, stretch=1)

    def _build_decisions(self, layout) -> None:
        """Previous / next, accept and reject buttons, the rejection reason."""
        actions = QGridLayout()
        for column, (label, slot) in enumerate((("◀ Previous", self.previous), ("Next ▶", self.next))):
            button = QPushButton(label)
            button.setToolTip(f"{'Previous' if slot == self.previous else 'Next'} candidate (Shift+N / N)")
            button.clicked.connect(slot)
            actions.addWidget(button, 0, column * 2, 1, 2 if column == 0 else 1)
        for key, column, row in (("C", 0, 1), ("I", 1, 1), ("R", 2, 1), ("Alt-C", 0, 2), ("Alt-I", 1, 2)):
            text, method, arguments = KEYS[key]
            label = text.split(": ", 1)[1] if key != "R" else "reject"
            button = QPushButton(f"{label} ({key.replace('-', '+')})")
            button.setToolTip(f"{text[:1].upper()}{text[1:]} and go to the next candidate")
            button.clicked.connect(lambda _=False, m=method, a=arguments: getattr(self, m)(*a))
            actions.addWidget(button, row, column)
        self.reject_reason = ComboBox(
            choices=[REJECT_CHOICE, *REJECTION_REASONS],
            value=REJECT_CHOICE,
            tooltip="Reject the candidate for a reason (vein, calcification, ...) and go to the next",
        )
        self.reject_reason.changed.connect(self._reject_chosen)
        actions.addWidget(self.reject_reason.native, 2, 2)
        layout.addLayout(actions)

    def _build_guidance(self, layout) -> None:
        """Export, the consensus read, the guidance text, status lines and the keys."""
        self.export_button = QPushButton("Export lesion table and rejected candidates")
        self.export_button.setToolTip("Save, then write the lesion table (with certainty) and the rejected candidates")
        self.export_button.clicked.connect(self.export)
        layout.addWidget(self.export_button)
        self.consensus_panel = ConsensusPanel(self)
        layout.addWidget(self.consensus_panel)

        self.guidance = QLabel(wordWrap=True, textFormat=Qt.TextFormat.RichText)
        self.guidance.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.guidance.setMinimumHeight(100)
        layout.addWidget(self.guidance)
        self.status_label = QLabel(wordWrap=True)  # the last result; autosaves are noted below it
        layout.addWidget(self.status_label)
        self.saved_label = QLabel(wordWrap=True, enabled=False)
        layout.addWidget(self.saved_label)
        keys = QCollapsible("Keys (on the annotation layer)")
        keys.setToolTip("The review keys act while the annotation layer is the selected layer")
        self.keys_label = QLabel(keys_table(), textFormat=Qt.TextFormat.RichText)
        keys.addWidget(self.keys_label)
        layout.addWidget(keys)
