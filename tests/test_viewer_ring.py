"""The ring around the lesion chosen in the Lesion table: on the SWI grid (the slice slider keeps its steps), as
wide as the lesion needs and thin."""

import numpy as np

from napari_deepmir.widgets._layers import MARKER_GAP_MM, MARKER_LAYER


def test_choosing_a_lesion_rings_it_on_the_swi_grid_sized_to_it(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-deepmir", "synthetic_subject")
    steps = tuple(viewer.dims.nsteps)
    swi = viewer.layers["sub-sample SWI"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Lesion table")
    widget.set_layer(viewer.layers["sub-sample true lesions"])
    table = widget.table.sort_values("diameter_mm")
    rings = {}
    for lesion_id in (int(table["lesion_id"].iloc[0]), int(table["lesion_id"].iloc[-1])):
        row = widget.proxy.mapFromSource(
            widget.model.index(int(np.flatnonzero(widget.model.frame["lesion_id"] == lesion_id)[0]), 0)
        )
        widget.view.selectRow(row.row())  # the user clicks the lesion's row
        marker = viewer.layers[MARKER_LAYER]
        assert tuple(viewer.dims.nsteps) == steps  # the slider still steps through the SWI's slices
        assert np.allclose(marker.extent.step, swi.extent.step)  # the SWI's slice steps
        lesion = widget.table.set_index("lesion_id").loc[lesion_id]
        z, y, x = marker.data_to_world(marker.data[0])
        assert z == viewer.dims.point[0] and np.allclose((y, x), lesion[["y_mm", "x_mm"]].to_numpy(float))
        ring_mm = float(marker.size[0]) * float(np.mean(marker.scale[-2:]))
        assert ring_mm >= lesion["diameter_mm"] + 2 * MARKER_GAP_MM  # the ring stays outside the lesion's rim
        line_mm = ring_mm * float(marker.border_width[0])
        assert line_mm < 1.0  # thin
        rings[lesion_id] = ring_mm
    small, large = rings.values()
    assert large > small
