"""Video input and output: streaming readers for files and frame folders (whole or a time range), exact frame
timing (constant or variable frame rate), an atomic H.264 writer."""

from m3ddm.io.frames import (
    find_sequence_folders,
    iter_folder_frames,
    list_frame_files,
    probe_frame_folder,
    read_folder_frames,
    read_image,
    write_frame_folder,
)
from m3ddm.io.source import VideoSource, open_video_source
from m3ddm.io.timing import FrameTiming
from m3ddm.io.video import (
    VideoInfo,
    VideoWriter,
    count_frames,
    iter_frames,
    probe_video,
    read_frames,
    write_video,
)

__all__ = [
    "FrameTiming",
    "VideoInfo",
    "VideoSource",
    "VideoWriter",
    "count_frames",
    "find_sequence_folders",
    "iter_folder_frames",
    "iter_frames",
    "list_frame_files",
    "open_video_source",
    "probe_frame_folder",
    "probe_video",
    "read_folder_frames",
    "read_frames",
    "read_image",
    "write_frame_folder",
    "write_video",
]
