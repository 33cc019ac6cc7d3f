import { LabIcon } from '@jupyterlab/ui-components';

/**
 * A laboratory flask, drawn with the theme's icon color classes.
 */
const flaskSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M8 2h8v2h-1v5.2l5.6 9.7A2 2 0 0 1 18.9 22H5.1a2 2 0 0 1-1.7-3.1L9 9.2V4H8V2zm3 2v5.7L8.4 14h7.2L13 9.7V4h-2z"/>
  </g>
</svg>`;

export const mlopsIcon = new LabIcon({
  name: 'jupyter-mlops:flask',
  svgstr: flaskSvg
});
