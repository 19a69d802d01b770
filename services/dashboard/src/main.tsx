// Entry point of the dashboard bundle (index.html loads it as a module: no inline script).
import { render } from 'preact';
import { App } from './app.tsx';
import './styles.css';

const root = document.getElementById('app');
if (root) render(<App />, root);
